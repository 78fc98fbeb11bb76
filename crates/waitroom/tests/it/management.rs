//! The management listener: `/metrics` and `/readyz` answer there, never on the public
//! port (the metrics name events; a readiness check costs a round trip).

use reqwest::StatusCode;
use test_support::Reply;

use crate::helpers::spawn_app;

#[tokio::test]
async fn metrics_and_readyz_move_from_the_public_port_to_the_management_port() {
    let app = spawn_app().await;
    for path in ["/metrics", "/readyz"] {
        let reply = Reply::of(app.http.get(format!("{}{path}", app.base))).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "public {path}: {}", reply.body);
    }
    assert_eq!(Reply::of(app.http.get(format!("{}/healthz", app.base))).await.status, StatusCode::OK);

    assert_ne!(app.management, app.base, "a listener of its own");
    for path in ["/healthz", "/readyz"] {
        let reply = Reply::of(app.http.get(format!("{}{path}", app.management))).await;
        assert_eq!(reply.status, StatusCode::OK, "management {path}: {}", reply.body);
    }
    let text = app.metrics_text().await;
    assert!(text.contains("# TYPE boxoffice_"), "Prometheus text");
    let reply = Reply::of(app.http.get(format!("{}/.well-known/jwks.json", app.management))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "no API there: {}", reply.body);
}
