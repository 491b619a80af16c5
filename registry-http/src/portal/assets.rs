//! The portal's files, embedded in the binary at build time (`registry-http/portal/`): plain
//! HTML, CSS and JavaScript modules, written by hand, with no build step and nothing fetched at
//! run time.

use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `/portal/` (`index.html` is also `/`).
    pub name: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its entity tag (a digest of the bytes).
    pub etag: String,
}

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../portal/", $name)) as &[u8])),*]
    };
}

/// The files, by path.
const FILES: &[(&str, &[u8])] = files![
    "index.html",
    "style.css",
    "app.js",
    "api.js",
    "dom.js",
    "pages/login.js",
    "pages/onboard.js",
    "pages/profile.js",
    "pages/projects.js",
    "pages/project.js",
    "pages/members.js",
    "pages/robots.js",
    "pages/repository.js",
    "pages/artifact.js",
    "markdown.js",
    "pages/users.js",
    "pages/groups.js",
    "pages/audit.js",
    "pages/gc.js",
    "pages/jobs.js",
    "pages/webhooks.js",
    "pages/dashboard.js",
    "pages/search.js",
    "pages/immutability.js",
    "pages/labels.js",
    "pages/settings.js",
    "pages/retention.js",
    "pages/scanners.js",
    "pages/registries.js",
    "pages/replications.js",
    "pages/security.js",
];

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Every embedded file.
pub fn all() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, bytes)| {
                let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
                Asset { name, bytes, content_type: content_type(name), etag: hex::encode(&digest.as_ref()[..12]) }
            })
            .collect()
    })
}

/// The file at `name`.
pub fn find(name: &str) -> Option<&'static Asset> {
    all().iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages build every element with `textContent` and attributes, never from markup: no
    /// user-supplied name can become HTML. No inline script or style either (the CSP forbids
    /// them, and the pages must not need them).
    #[test]
    fn no_script_writes_markup_and_nothing_is_inline() {
        for asset in all() {
            let text = std::str::from_utf8(asset.bytes).expect("utf-8");
            for banned in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
                assert!(!text.contains(banned), "{} uses {banned}", asset.name);
            }
            if asset.name.ends_with(".html") {
                assert!(
                    !text.contains("<script>") && !text.contains(" style=") && !text.contains(" on"),
                    "{}",
                    asset.name
                );
            }
        }
        assert!(find("index.html").is_some_and(|a| a.content_type.starts_with("text/html")));
        assert!(find("../Cargo.toml").is_none());
    }
}
