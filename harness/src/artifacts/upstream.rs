//! Where upstream release downloads come from: one base URL per upstream host, each overridable
//! by one environment variable, so that a mirror or a test server serving the same URL layout
//! stands in for it. The fetchers add upstream's own paths below the base:
//!
//! * GitHub ([`github_url`], `KATA_HARNESS_GITHUB_URL`, default `https://github.com`): Kata's
//!   assets at `<base>/kata-containers/kata-containers/releases/download/<version>/<asset>`
//!   ([`super::kata_release`]);
//! * dl.k8s.io ([`k8s_url`], `KATA_HARNESS_K8S_URL`, default `https://dl.k8s.io`): Kubernetes
//!   binaries at `<base>/release/<version>/bin/linux/<arch>/<binary>`, each with
//!   `<binary>.sha256` beside it (`kube::release`).
//!
//! The scripts (scripts/) read the same two variables.

/// Replaces [`DEFAULT_GITHUB_URL`].
pub const GITHUB_URL_ENV: &str = "KATA_HARNESS_GITHUB_URL";
pub const DEFAULT_GITHUB_URL: &str = "https://github.com";
/// Replaces [`DEFAULT_K8S_URL`].
pub const K8S_URL_ENV: &str = "KATA_HARNESS_K8S_URL";
pub const DEFAULT_K8S_URL: &str = "https://dl.k8s.io";

/// GitHub's base URL, without a trailing slash: `$KATA_HARNESS_GITHUB_URL`, else
/// `https://github.com`.
pub fn github_url() -> String {
    base(std::env::var(GITHUB_URL_ENV).ok().as_deref(), DEFAULT_GITHUB_URL)
}

/// dl.k8s.io's base URL, without a trailing slash: `$KATA_HARNESS_K8S_URL`, else
/// `https://dl.k8s.io`.
pub fn k8s_url() -> String {
    base(std::env::var(K8S_URL_ENV).ok().as_deref(), DEFAULT_K8S_URL)
}

/// The variable's value (unset or empty: the default), without trailing slashes.
fn base(value: Option<&str>, default: &str) -> String {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_the_variable_without_trailing_slashes_else_the_default() {
        assert_eq!(base(None, DEFAULT_K8S_URL), "https://dl.k8s.io");
        assert_eq!(base(Some(""), DEFAULT_GITHUB_URL), "https://github.com");
        assert_eq!(base(Some("  "), DEFAULT_GITHUB_URL), "https://github.com");
        assert_eq!(
            base(Some("http://127.0.0.1:8080/mirror/"), DEFAULT_K8S_URL),
            "http://127.0.0.1:8080/mirror"
        );
        assert_eq!(base(Some("http://m//"), DEFAULT_K8S_URL), "http://m");
    }
}
