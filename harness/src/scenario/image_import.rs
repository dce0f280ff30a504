//! The `image_import:` row: `ctr -n <namespace> images import` of an image archive, then
//! whether the CRI sees the image, and (with `container: true`) a container from it.

use std::path::Path;

use super::images::run_container;
use super::model::{ImageImportAction, Row};
use super::trial::{settled_image_status, short_error, Failure};
use crate::images;
use crate::process::shell_quote;
use crate::provision::{Testbed, BUSYBOX_BINARY};
use crate::report::Evidence;

pub(super) async fn run_image_import(
    testbed: &Testbed,
    row: &Row,
    action: &ImageImportAction,
    evidence: &mut Evidence,
) -> Result<String, Failure> {
    let image = format!("localhost/kata-harness/import-{}-{}:1", row.scenario, testbed.id);
    let file = format!("{}.tar", row.scenario);
    // A file naming the image makes every row's blobs its own: content left in the store by
    // an earlier row would otherwise hide a missing blob (registry-facts.md §6).
    let archive = images::busybox(Path::new(BUSYBOX_BINARY))
        .map(|b| b.file("etc/kata-harness-image", image.clone().into_bytes(), 0o644))
        .and_then(|b| testbed.put_image_layout(&file, &image, &b, action.archive))
        .map_err(|e| Failure::new("no archive", format!("failed to build the image archive: {e}")))?;
    let archive_path = archive.path.to_string_lossy();
    let mut args = vec!["images", "import"];
    match action.platforms.as_deref() {
        Some("all") => args.push("--all-platforms"),
        Some(platform) => args.extend(["--platform", platform]),
        None => {}
    }
    args.push(&archive_path);
    let import = testbed.ctr_argv(&action.namespace, &args);
    evidence.reproduce(Testbed::ctr_line(&action.namespace, &args));
    let out = testbed
        .node
        .run_unchecked(&import, crate::provision::NODE_COMMAND_DEADLINE)
        .map_err(|e| Failure::new("ctr did not finish", crate::errors::chain(&e)))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    evidence.file(
        "ctr-import.txt",
        &format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{stderr}\n",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ),
    );
    let import_failed = match (&row.expect.command_error, out.status.success()) {
        (None, true) => None,
        (None, false) => {
            return Err(Failure::new(
                "import failed",
                format!("ctr images import failed: {stderr}"),
            ))
        }
        (Some(want), true) => {
            let _ = testbed.ctr(&action.namespace, &["images", "rm", &image]);
            return Err(Failure::new(
                "imported",
                format!("expected ctr images import to fail with {want:?}"),
            ));
        }
        (Some(want), false) if stderr.contains(want.as_str()) => {
            Some(stderr.lines().last().unwrap_or_default().to_owned())
        }
        (Some(want), false) => {
            return Err(Failure::new(
                stderr.lines().last().unwrap_or_default().to_owned(),
                format!("expected ctr's error to contain {want:?}"),
            ))
        }
    };
    evidence.reproduce(format!("crictl inspecti {}", shell_quote(&image)));
    // CRI: ImageStatus (crictl inspecti) and ListImages (crictl images)
    let status = settled_image_status(testbed, &image, row.expect.cri_visible == Some(true)).await;
    let listed = testbed.cri.list_images().await;
    // A container from the imported image: runs when the CRI sees it, NotFound otherwise
    // (nothing can be pulled on the air-gapped node, so success proves no pull was needed).
    let ran = if action.container {
        Some(run_container(testbed, row, &action.handler, &image, evidence).await)
    } else {
        None
    };
    let _ = testbed.ctr(&action.namespace, &["images", "rm", &image]);
    let status = status.map_err(|e| Failure::new(short_error(&e), format!("ImageStatus failed: {e}")))?;
    let listed = listed.map_err(|e| Failure::new(short_error(&e), format!("ListImages failed: {e}")))?;
    let in_list = listed.iter().any(|i| i.repo_tags.iter().any(|t| t == &image));
    let visible = status.is_some();
    let observed = match &import_failed {
        Some(error) => format!(
            "{error}; {} to the CRI",
            if visible { "visible" } else { "not visible" }
        ),
        None => format!(
            "{} to the CRI (imported into {})",
            if visible { "visible" } else { "not visible" },
            action.namespace
        ),
    };
    if visible != in_list {
        return Err(Failure::new(
            observed,
            format!("ImageStatus ({visible}) and ListImages ({in_list}) disagree"),
        ));
    }
    let want = row.expect.cri_visible.expect("validated");
    if visible != want {
        return Err(Failure::new(
            observed,
            format!(
                "expected the image to be {}visible to the CRI",
                if want { "" } else { "not " }
            ),
        ));
    }
    match ran {
        Some(ran) => Ok(format!("{observed}; {}", ran?)),
        None => Ok(observed),
    }
}
