//! Entry points for the fuzz targets in `fuzz/` (`cargo fuzz`, which builds with
//! `--cfg fuzzing`): each feeds arbitrary bytes to one of the readers and checks that decide
//! what vane lets through or runs, and panics where a property the property tests check fails.

/// A client's request head: the same whole or in two pieces; framed one way when accepted.
pub fn http1_request(data: &[u8]) {
    crate::proxy::fuzz::http1_request(data);
}

/// A backend's response head: the same whole or in two pieces.
pub fn http1_response(data: &[u8]) {
    crate::proxy::fuzz::http1_response(data);
}

/// A chunked request body: the same whole or in pieces.
pub fn chunked_body(data: &[u8]) {
    crate::proxy::fuzz::chunked_body(data);
}

/// Head rewriting: no hop-by-hop header forwarded, every other one kept.
pub fn head_rewrite(data: &[u8]) {
    crate::proxy::fuzz::head_rewrite(data);
}

/// The plugin answer check: a used ranking names only eligible backends.
pub fn answer_check(data: &[u8]) {
    crate::policy::fuzz_answer_check(data);
}

/// The compiled-plugin cache entry check: only an entry exactly as written gives code back.
pub fn cache_entry(data: &[u8]) {
    crate::plugin::fuzz_cache_entry(data);
}

/// The component-fit check: no component makes it panic.
pub fn component_fit(data: &[u8]) {
    crate::plugin::fuzz_component_fit(data);
}

/// The config reader: no text makes it panic, and every issue is located on a line of it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    if let Err(error) = crate::config::Config::parse(text, path, std::path::Path::new("/")) {
        let lines = text.lines().count().max(1);
        for issue in &error.issues {
            assert!(
                issue
                    .line
                    .is_none_or(|line| (1..=lines + 1).contains(&line)),
                "{issue:?}"
            );
        }
    }
}
