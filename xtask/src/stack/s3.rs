//! s3s-fs, standing in for Backblaze B2's S3 API: it checks SigV4 on every
//! request (a bad signature gets 403) and accepts presigned URLs. Buckets
//! are directories under its root; path-style addressing.
//!
//! B2 also applies a bucket's CORS rules, which s3s-fs lacks and the admin
//! site needs (the browser PUTs a file to a presigned URL and shows it
//! afterwards): scripts/b2-cors-front.mjs answers preflights and adds the
//! CORS headers for the stack's site origins, in front of s3s-fs, passing
//! everything else through unchanged. The manifest's endpoint is the
//! front's, so the Worker, the tests and the browser all see one server.

use std::path::Path;
use std::process::Command;

use stack_manifest::S3;

use super::{data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;
use crate::project::{self, random_hex};

const BUCKET: &str = "files";
/// B2 regions look like this; s3s-fs accepts any region in the signature.
const REGION: &str = "us-west-004";

/// s3s-fs on `upstream_port` and, as the second launch, its CORS front on
/// `port` allowing `origins`.
pub(super) fn prepare(
    tools: &StackTools,
    state: &Path,
    port: u16,
    upstream_port: u16,
    origins: &[String],
) -> anyhow::Result<(Prepared<S3>, Launch)> {
    let root = data_dir(state, "s3")?;
    std::fs::create_dir_all(root.join(BUCKET))?;
    let access_key_id = format!("local{}", random_hex(6));
    let secret_access_key = random_hex(20);
    let mut command = Command::new(&tools.s3s_fs);
    command
        .args(["--host", "127.0.0.1", "--port", &upstream_port.to_string()])
        .args([
            "--access-key",
            &access_key_id,
            "--secret-key",
            &secret_access_key,
        ])
        .arg(&root);
    let mut front = Command::new(&tools.node);
    front
        .arg(project::root().join("scripts/b2-cors-front.mjs"))
        .args(["--listen", &port.to_string()])
        .args(["--upstream", &upstream_port.to_string()])
        .args(["--origins", &origins.join(",")]);
    Ok((
        Prepared {
            launch: Launch {
                name: "s3",
                command,
                probe: Probe::Tcp(upstream_port),
            },
            manifest: S3 {
                endpoint: format!("http://127.0.0.1:{port}"),
                region: REGION.into(),
                bucket: BUCKET.into(),
                access_key_id,
                secret_access_key,
            },
        },
        Launch {
            name: "s3-cors",
            command: front,
            probe: Probe::Tcp(port),
        },
    ))
}
