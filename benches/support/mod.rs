//! What every bench shares: reading its sizes from the environment.

/// The number in environment variable `name` (`_` and `,` allowed as
/// digit separators), or `default` when it is unset. A value that is not a
/// number stops the bench: a typo must not silently run the default size.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        Err(_) => default,
    }
}
