//! Server-rendered pages, read as a browser parses them.

use std::collections::BTreeMap;

fn parse(html: &str) -> scraper::Html {
    scraper::Html::parse_document(html)
}

fn selector(css: &str) -> scraper::Selector {
    scraper::Selector::parse(css).unwrap_or_else(|e| panic!("selector {css:?}: {e}"))
}

/// The text of the element whose `id` is `id`, trimmed, character references decoded.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let doc = parse(html);
    let el = doc.select(&selector(&format!("[id=\"{id}\"]"))).next()?;
    Some(el.text().collect::<String>().trim().to_owned())
}

/// Every `<tag …>` in `html`, as attribute name (lower case) → value (decoded; "" for
/// a bare attribute).
pub fn tags(html: &str, tag: &str) -> Vec<BTreeMap<String, String>> {
    parse(html)
        .select(&selector(tag))
        .map(|el| el.value().attrs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .collect()
}

/// The value of the first `<input name="name">` of a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let doc = parse(html);
    let input = doc.select(&selector(&format!("input[name=\"{name}\"]"))).next()?;
    Some(input.value().attr("value").unwrap_or_default().to_owned())
}

/// The option values of `<select name="name">` (an option's text when it has no
/// value); `None` when the page has no such select.
pub fn select_options(html: &str, name: &str) -> Option<Vec<String>> {
    let doc = parse(html);
    let select = doc.select(&selector(&format!("select[name=\"{name}\"]"))).next()?;
    let options = select
        .select(&selector("option"))
        .map(|o| {
            o.value().attr("value").map(str::to_owned).unwrap_or_else(|| o.text().collect::<String>().trim().to_owned())
        })
        .collect();
    Some(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_as_a_browser_reads_them() {
        let page = r#"<form><INPUT name=csrf value="a&amp;b"><input name="next">
            <select name="org"><option value="acme">Acme<option>beta</select></form>
            <p id="secret"> kw_x&lt;y </p>"#;
        assert_eq!(input_value(page, "csrf").as_deref(), Some("a&b"));
        assert_eq!(input_value(page, "next").as_deref(), Some(""));
        assert_eq!(input_value(page, "nope"), None);
        assert_eq!(select_options(page, "org"), Some(vec!["acme".into(), "beta".into()]));
        assert_eq!(element_text(page, "secret").as_deref(), Some("kw_x<y"));
        assert_eq!(tags(page, "input").len(), 2);
    }
}
