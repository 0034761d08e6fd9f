//! The admin API behind a bearer token: calls without the token, or with another, get 401 and
//! change nothing; the right token is let in; a new token takes over at a reload; and vane
//! will not start with its admin API open to other machines and no token.

use bytes::Bytes;
use http::Method;
use vane_e2e::backend::backend;
use vane_e2e::files::{scratch_folder, write_file};
use vane_e2e::proxy::config_for;
use vane_e2e::{Client, Vane};

const TOKEN: &str = "3f6c1a9e0b7d4c2e8a5f1b3d7e9c0a2f";
const OTHER: &str = "b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6";

/// `method path` on vane's admin API with `token` as bearer, if any: status, challenge, body.
async fn call(
    vane: &Vane,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, String, String) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    let reply = Client::new(vane.admin.expect("an admin listener"))
        .send(method, path, &headers, Bytes::new())
        .await
        .expect("the admin API answers");
    let challenge = reply
        .headers
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (reply.status.as_u16(), challenge, reply.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_calls_with_the_token_are_let_in() {
    let a = backend("a").start().await;
    let dir = scratch_folder("admin-token");
    let token = write_file(&dir, "token", format!("{TOKEN}\n"));
    let extra = format!(
        "admin = \"127.0.0.1:0\"\nadmin_token_file = {:?}\n",
        token.display().to_string()
    );
    let vane = Vane::start(&config_for(&[&a], &extra)).await.unwrap();
    for path in ["/backends", "/discovery", "/policy", "/metrics"] {
        let (status, challenge, body) = call(&vane, Method::GET, path, None).await;
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert_eq!(challenge, "Bearer realm=\"vane admin\"", "{path}");
        let (status, challenge, _) = call(&vane, Method::GET, path, Some(OTHER)).await;
        assert_eq!(status, 401, "{path} with another token");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        let (status, _, body) = call(&vane, Method::GET, path, Some(TOKEN)).await;
        assert_eq!(status, 200, "{path} with the token: {body}");
    }
    // An orchestrator's probes need no token.
    for path in ["/live", "/ready"] {
        for method in [Method::GET, Method::HEAD] {
            let (status, _, body) = call(&vane, method.clone(), path, None).await;
            assert_eq!(status, 200, "{method} {path} without a token: {body}");
        }
    }
    // The dashboard's page holds no data: it answers without the token, and says it needs one.
    let (status, _, page) = call(&vane, Method::GET, "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains("data-token=\"required\""), "{page}");
    // The runtime calls change nothing without the token.
    for (method, path) in [
        (Method::POST, "/backends/a/drain"),
        (Method::DELETE, "/backends/a"),
        (Method::PATCH, "/backends/a"),
        (Method::POST, "/backends"),
    ] {
        let (status, _, body) = call(&vane, method.clone(), path, None).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
    }
    assert!(vane.state().backends().backends()[0].in_rotation());
    // A refused reload is not even tried: the count of reloads stays where it was.
    let (status, _, _) = call(&vane, Method::POST, "/reload", Some(OTHER)).await;
    assert_eq!(status, 401);
    let (_, _, policy) = call(&vane, Method::GET, "/policy", Some(TOKEN)).await;
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(policy["reloads"]["succeeded"], 0, "{policy}");
    assert_eq!(policy["reloads"]["refused"], 0, "{policy}");
    let (status, _, body) = call(&vane, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    // The proxy itself never asks for the token.
    assert_eq!(vane.client().get("/").await.unwrap().status, 200);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_token_takes_over_at_a_reload() {
    let a = backend("a").start().await;
    let dir = scratch_folder("admin-token-rotation");
    write_file(&dir, "token", TOKEN);
    let extra = "admin = \"127.0.0.1:0\"\nadmin_token_file = \"token\"\n";
    let path = write_file(&dir, "vane.toml", config_for(&[&a], extra));
    let vane = Vane::start_file(&path).await.unwrap();
    write_file(&dir, "token", OTHER);
    let (status, _, body) = call(&vane, Method::POST, "/reload", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("the admin API token was replaced"), "{body}");
    assert_eq!(
        call(&vane, Method::GET, "/backends", Some(TOKEN)).await.0,
        401
    );
    assert_eq!(
        call(&vane, Method::GET, "/backends", Some(OTHER)).await.0,
        200
    );
    // A token file gone bad refuses the reload; the token in force stays.
    write_file(&dir, "token", "short");
    let (status, _, body) = call(&vane, Method::POST, "/reload", Some(OTHER)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("admin_token_file") && body.contains("at least 16"),
        "{body}"
    );
    assert_eq!(
        call(&vane, Method::GET, "/backends", Some(OTHER)).await.0,
        200
    );
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_api_open_to_other_machines_needs_a_token() {
    let a = backend("a").start().await;
    let open = config_for(&[&a], "admin = \"0.0.0.0:0\"\n");
    let err = Vane::start(&open).await.err().expect("refused").to_string();
    assert!(err.contains("test.toml:2: admin:"), "{err}");
    assert!(err.contains("admin_token_file"), "{err}");

    let dir = scratch_folder("admin-token-missing");
    let missing = dir.join("nowhere").display().to_string();
    let text = config_for(
        &[&a],
        &format!("admin = \"0.0.0.0:0\"\nadmin_token_file = {missing:?}\n"),
    );
    let err = Vane::start(&text).await.err().expect("refused").to_string();
    assert!(
        err.contains("test.toml:3: admin_token_file: cannot read"),
        "{err}"
    );
    assert!(err.contains(&missing), "{err}");
}
