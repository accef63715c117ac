//! Masking of secrets: the one function every banner, `Debug` of the config and error message
//! goes through before it shows a URL or a librdkafka property.

/// What a masked secret shows instead.
pub const MASK: &str = "***";

/// `url` with the password of its user info masked (`http://user:***@host`). The user info ends
/// at the last `@` before the path, so a password holding `@` or `:` is masked whole; text that
/// is not a URL but holds an `@` is masked up to it.
pub fn mask_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    // The user info cannot hold `/`, `?` or `#` unescaped, but a mistyped URL can: take the last
    // `@` anywhere, to mask too much rather than too little.
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    format!("{}{user}:{MASK}@{}", &url[..start], &rest[at + 1..])
}

/// Whether a librdkafka property (or a config key) holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    const SECRET: [&str; 7] = [
        "password",
        "secret",
        "token",
        "sasl.oauthbearer.config",
        "ssl.key.pem",
        "ssl_key",
        "ssl.keystore.key",
    ];
    let key = key.to_ascii_lowercase();
    SECRET.iter().any(|s| key.contains(s))
}

/// A property's value as it may be shown: [`MASK`] for a secret.
pub fn shown_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) {
        MASK
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_masked_whole() {
        for (url, shown) in [
            ("http://user:pw@host:8081", "http://user:***@host:8081"),
            ("https://u:p@ss@host/path", "https://u:***@host/path"),
            ("http://u:a:b@host", "http://u:***@host"),
            ("htp://u:secret@host:80x", "htp://u:***@host:80x"),
            ("u:secret@host", "u:***@host"),
            ("http://host:8081", "http://host:8081"),
            ("mock://scope", "mock://scope"),
            ("http://u:p/w@host", "http://u:***@host"),
        ] {
            assert_eq!(mask_url(url), shown, "{url}");
        }
    }

    #[test]
    fn secret_keys_are_known() {
        for key in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl_password",
            "registry_bearer_token",
            "ssl.key.pem",
        ] {
            assert!(is_secret_key(key), "{key}");
            assert_eq!(shown_value(key, "x"), MASK);
        }
        assert!(!is_secret_key("fetch.wait.max.ms"));
        assert_eq!(shown_value("sasl.username", "ada"), "ada");
    }
}
