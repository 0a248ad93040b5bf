//! The Worker's cron (wrangler.toml `[triggers]`, every minute): the
//! periodic tasks. Each runs whatever the other's outcome; a task that
//! fails leaves its work for the next run.

use std::sync::Arc;

use crate::pages::missed;
use crate::App;

/// Runs every task once: what each did (`Ok`) or why it failed (`Err`),
/// one line each, for the Worker's log.
pub async fn run(app: &Arc<App>) -> Vec<Result<String, String>> {
    let drained = missed::drain(app)
        .await
        .map(|drained| drained.to_string())
        .map_err(|e| format!("missed invalidations: {e}"));
    let swept = if app.tidb.is_none() || app.b2.is_none() {
        Ok("upload sweep: skipped, TiDB or B2 is not configured".into())
    } else {
        crate::uploads::sweep(app)
            .await
            .map(|report| {
                format!(
                    "upload sweep: {} removed, {} settled, {} left for the next run",
                    report.removed, report.settled, report.failed
                )
            })
            .map_err(|e| format!("upload sweep failed: {e}"))
    };
    vec![drained, swept]
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::Platform;

    #[test]
    fn a_worker_without_tidb_or_b2_runs_its_cron_without_errors() {
        let app = App::new(|_| None, Platform::native());
        let outcomes = run(&app).now_or_never().expect("nothing to wait for");
        assert_eq!(
            outcomes,
            [
                Ok("0 missed invalidations landed".to_owned()),
                Ok("upload sweep: skipped, TiDB or B2 is not configured".to_owned()),
            ]
        );
    }
}
