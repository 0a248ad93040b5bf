//! The API Worker: a thin shell that turns Worker events into calls on the
//! axum [`app::router`]. Protocol and domain logic belongs in the pure crates
//! beside this one, not here.

mod app;
mod health;

pub use app::router;
pub use health::BuildInfo;

#[cfg(target_arch = "wasm32")]
mod entry {
    use tower_service::Service;
    use worker::{event, Context, Env, HttpRequest};

    #[event(fetch)]
    async fn fetch(
        req: HttpRequest,
        _env: Env,
        _ctx: Context,
    ) -> worker::Result<axum::http::Response<axum::body::Body>> {
        // Router::call is infallible; the error type is `Infallible`.
        Ok(super::router().call(req).await?)
    }
}
