//! s3s-fs, standing in for Backblaze B2's S3 API: it checks SigV4 on every
//! request (a bad signature gets 403) and accepts presigned URLs. Buckets
//! are directories under its root; path-style addressing.

use std::path::Path;
use std::process::Command;

use stack_manifest::S3;

use super::{data_dir, Launch, Prepared, Probe};
use crate::install::StackTools;
use crate::project::random_hex;

const BUCKET: &str = "files";
/// B2 regions look like this; s3s-fs accepts any region in the signature.
const REGION: &str = "us-west-004";

pub(super) fn prepare(tools: &StackTools, state: &Path, port: u16) -> anyhow::Result<Prepared<S3>> {
    let root = data_dir(state, "s3")?;
    std::fs::create_dir_all(root.join(BUCKET))?;
    let access_key_id = format!("local{}", random_hex(6));
    let secret_access_key = random_hex(20);
    let mut command = Command::new(&tools.s3s_fs);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            &access_key_id,
            "--secret-key",
            &secret_access_key,
        ])
        .arg(&root);
    Ok(Prepared {
        launch: Launch {
            name: "s3",
            command,
            probe: Probe::Tcp(port),
        },
        manifest: S3 {
            endpoint: format!("http://127.0.0.1:{port}"),
            region: REGION.into(),
            bucket: BUCKET.into(),
            access_key_id,
            secret_access_key,
        },
    })
}
