//! Imports inside `keyward-server` point one way: no two modules depend on each other,
//! directly or through others (docs/architecture.md, "Layers").
//!
//! The sources are parsed with `syn`; every `use` and every path starting with `crate::`,
//! `super::` or `self::` is an edge to the deepest module it names. Test code
//! (`#[cfg(test)]`) is left out. A module's use of its own ancestors is not an edge: a
//! parent declares, re-exports and routes its children, so the child naming something the
//! parent declares is the hierarchy itself, not a second direction. Everything else that
//! forms a cycle fails the test, with the modules and edges named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

type Module = Vec<String>;

/// Every module of the crate (`[]` is the crate root), with its parsed file.
fn modules(src: &Path) -> BTreeMap<Module, syn::File> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut name: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if matches!(name.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                name.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(name, file);
        }
    }
    out
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| m.path().is_ident("test")))
}

/// The paths a module's code names, as written (`crate::auth::Grant`, `super::json`…).
#[derive(Default)]
struct Paths(Vec<Vec<String>>);

impl Paths {
    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut next = prefix.to_vec();
                next.push(p.ident.to_string());
                self.use_tree(&next, &p.tree);
            }
            syn::UseTree::Name(n) => self.0.push([prefix, &[n.ident.to_string()]].concat()),
            syn::UseTree::Rename(r) => self.0.push([prefix, &[r.ident.to_string()]].concat()),
            syn::UseTree::Glob(_) => self.0.push(prefix.to_vec()),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }
}

impl<'a> Visit<'a> for Paths {
    fn visit_item_mod(&mut self, m: &'a syn::ItemMod) {
        if !is_test_only(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'a syn::ItemFn) {
        if !is_test_only(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_item_use(&mut self, u: &'a syn::ItemUse) {
        if !is_test_only(&u.attrs) {
            self.use_tree(&[], &u.tree);
        }
    }
    fn visit_path(&mut self, p: &'a syn::Path) {
        self.0.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
}

/// The module a path written in `here` points into, if it is one of the crate's.
fn target(here: &Module, path: &[String], known: &BTreeMap<Module, syn::File>) -> Option<Module> {
    let (mut base, mut rest): (Module, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (vec![], &path[1..]),
        Some("self") => (here.clone(), &path[1..]),
        Some("super") => (here[..here.len().checked_sub(1)?].to_vec(), &path[1..]),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let full: Module = base.into_iter().chain(rest.iter().cloned()).collect();
    (0..=full.len()).rev().map(|n| full[..n].to_vec()).find(|m| known.contains_key(m))
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'e> {
        edges: &'e BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'e Module, usize>,
        low: BTreeMap<&'e Module, usize>,
        stack: Vec<&'e Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'e> Walk<'e> {
        fn visit(&mut self, v: &'e Module) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.stack.contains(&w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().position(|m| *m == v).unwrap();
                let component: Vec<Module> = self.stack.drain(at..).cloned().collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], found: vec![] };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}

fn dependencies(known: &BTreeMap<Module, syn::File>) -> BTreeMap<Module, BTreeSet<Module>> {
    known
        .iter()
        .map(|(here, file)| {
            let mut paths = Paths::default();
            paths.visit_file(file);
            let targets = paths
                .0
                .iter()
                .filter_map(|p| target(here, p, known))
                .filter(|t| t != here && !here.starts_with(t))
                .collect();
            (here.clone(), targets)
        })
        .collect()
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let known = modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(known.len() > 20, "the sources were found ({} modules)", known.len());
    let edges = dependencies(&known);
    let found = cycles(&edges);
    let report: Vec<String> = found
        .iter()
        .map(|component| {
            let members: BTreeSet<&Module> = component.iter().collect();
            let lines: Vec<String> = component
                .iter()
                .map(|m| {
                    let to: Vec<String> = edges[m].iter().filter(|t| members.contains(t)).map(name).collect();
                    format!("  {} -> {}", name(m), to.join(", "))
                })
                .collect();
            format!("a cycle of {} modules:\n{}", component.len(), lines.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", report.join("\n"));
}

/// The check itself finds a cycle where there is one, and none where there is none.
#[test]
fn the_check_sees_a_cycle() {
    let file = |code: &str| syn::parse_file(code).unwrap();
    let m = |s: &str| s.split("::").filter(|p| !p.is_empty()).map(String::from).collect::<Module>();
    let mut known = BTreeMap::new();
    known.insert(m(""), file("mod a; mod b; mod c;"));
    known.insert(m("a"), file("use crate::b::Thing; pub struct Other;"));
    known.insert(m("b"), file("pub struct Thing; fn f() -> super::c::Third { todo!() }"));
    known.insert(m("c"), file("pub struct Third(crate::a::Other);"));
    let found = cycles(&dependencies(&known));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().collect::<BTreeSet<_>>(), [m("a"), m("b"), m("c")].iter().collect());

    known.insert(m("c"), file("pub struct Third; #[cfg(test)] mod tests { use crate::a::Other; }"));
    assert!(cycles(&dependencies(&known)).is_empty(), "test code and a one-way chain are not cycles");
}
