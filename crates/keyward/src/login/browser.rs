//! Opening the verification address in a browser, when there is one: `$BROWSER`, `open`
//! on macOS, `xdg-open` when there is a display. Never fatal: the address and the code are
//! printed anyway.

/// Tries `$BROWSER`, `open` (macOS) or `xdg-open` (with a display); never fails the login.
pub fn open_browser(url: &str) {
    let (program, args): (String, Vec<String>) =
        if let Some(browser) = std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty()) {
            // $BROWSER may be a colon-separated list of commands, each with %s for the URL.
            let first = browser.split(':').next().unwrap_or_default().trim().to_owned();
            let mut words: Vec<String> = first.split_whitespace().map(str::to_owned).collect();
            if words.is_empty() {
                return;
            }
            let program = words.remove(0);
            if words.iter().any(|w| w.contains("%s")) {
                (program, words.into_iter().map(|w| w.replace("%s", url)).collect())
            } else {
                words.push(url.to_owned());
                (program, words)
            }
        } else if cfg!(target_os = "macos") {
            ("open".into(), vec![url.to_owned()])
        } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
            ("xdg-open".into(), vec![url.to_owned()])
        } else {
            return;
        };
    let spawned = std::process::Command::new(&program)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reaped in the background: no zombie, and no waiting on a browser that stays open.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(_) => eprintln!("(could not start {program}; open the address above yourself)"),
    }
}
