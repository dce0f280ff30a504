//! Helpers shared by the integration tests.

use std::path::Path;

/// Compares rendered text with `tests/golden/<golden>`; `UPDATE_GOLDEN=1` rewrites the file
/// instead (after an intended change).
pub fn assert_golden(rendered: &str, golden: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        rendered, want,
        "{golden} differs; rerun with UPDATE_GOLDEN=1 if the change is intended"
    );
}
