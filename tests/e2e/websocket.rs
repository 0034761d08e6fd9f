//! WebSocket through vane: the client's upgrade reaches the backend, the 101 joins the two
//! connections, and messages pass both ways (text, binary, several MiB) until either side
//! closes; a session counts as in flight on its backend for its whole life, so least-conn sends
//! a new one where the fewest are open; a backend that refuses the upgrade has its answer passed
//! on unchanged; an idle tunnel is closed, and so is one still open when a drain ends.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Error, Message};
use vane_e2e::proxy::policy;
use vane_e2e::websocket::{WsBackend, WsClient, connect};
use vane_e2e::{Vane, wait_until};

/// vane with an admin listener and `extra` tables in front of `backends`.
async fn vane_for(extra: &str, backends: &[&WsBackend]) -> Vane {
    let mut config = format!("listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{extra}\n");
    for backend in backends {
        config.push_str(&backend.toml());
    }
    Vane::start(&config).await.expect("vane starts")
}

/// Opens a session through `vane`: the session and the backend that took it.
async fn open(vane: &Vane) -> (WsClient, String) {
    let (session, answer) = connect(vane.address, "/chat").await.expect("a handshake");
    assert_eq!(answer.status(), 101);
    let backend = answer.headers()["x-backend"].to_str().unwrap().to_owned();
    (session, backend)
}

/// Sends `message` and expects it back.
async fn echo(session: &mut WsClient, message: Message) {
    session.send(message.clone()).await.expect("sent");
    let back = tokio::time::timeout(Duration::from_secs(30), session.next())
        .await
        .expect("an echo in time")
        .expect("an echo")
        .expect("a message");
    assert_eq!(back, message);
}

/// Waits until the session ends, which must happen: read on past a close (which sends the
/// answering close, as a client does) until the connection ends.
async fn ended(session: &mut WsClient) {
    let end = async { while let Some(Ok(_)) = session.next().await {} };
    tokio::time::timeout(Duration::from_secs(10), end)
        .await
        .expect("the session ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_pass_both_ways_and_either_side_may_close() {
    let a = WsBackend::echo("a").await;
    let vane = vane_for("", &[&a]).await;
    let (mut session, backend) = open(&vane).await;
    assert_eq!(backend, "a");
    echo(&mut session, Message::text("hello")).await;
    let large: Vec<u8> = (0..(6 << 20)).map(|i| (i % 251) as u8).collect();
    echo(&mut session, Message::binary(large)).await;
    assert_eq!(
        vane.in_flight(),
        [1],
        "the session is in flight on its backend"
    );
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_tunnels_open{}"], 1.0);
    assert_eq!(metrics["vane_tunnels_opened_total{}"], 1.0);

    // The client closes.
    session.close(None).await.expect("a close");
    ended(&mut session).await;
    wait_until("the backend's session closed", || a.open() == 0).await;
    wait_until("nothing in flight", || vane.in_flight() == [0]).await;

    // The backend closes.
    let (mut session, _) = open(&vane).await;
    session.send(Message::text("close me")).await.expect("sent");
    ended(&mut session).await;
    wait_until("nothing in flight", || vane.in_flight() == [0]).await;
    let metrics = vane.metrics().await;
    assert_eq!(metrics["vane_tunnels_open{}"], 0.0);
    assert_eq!(metrics["vane_tunnels_opened_total{}"], 2.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_sends_a_new_session_where_the_fewest_are_open() {
    let backends = [
        WsBackend::echo("a").await,
        WsBackend::echo("b").await,
        WsBackend::echo("c").await,
    ];
    let vane = vane_for(
        &policy("least_conn", ""),
        &backends.iter().collect::<Vec<_>>(),
    )
    .await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open(&vane).await);
    }
    let mut names: Vec<&str> = sessions.iter().map(|(_, name)| name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["a", "b", "c"], "one session each");
    assert_eq!(vane.in_flight(), [1, 1, 1]);
    // Each time one backend's session ends, the next session goes there: the others have one.
    for _ in 0..3 {
        let (mut session, freed) = sessions.remove(1);
        session.close(None).await.expect("a close");
        ended(&mut session).await;
        wait_until("its session no longer in flight", || {
            vane.in_flight().iter().sum::<u32>() == 2
        })
        .await;
        let (session, name) = open(&vane).await;
        assert_eq!(name, freed, "the new session goes where one just closed");
        sessions.push((session, name));
    }
    vane.assert_no_fallbacks();
    // Open sessions would go on through the whole drain (30 s by default).
    drop(sessions);
    wait_until("every session closed", || vane.in_flight() == [0, 0, 0]).await;
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_refuses_the_upgrade_has_its_answer_passed_on() {
    let refusing = WsBackend::refusing("no-ws").await;
    let vane = vane_for("", &[&refusing]).await;
    let Err(Error::Http(answer)) = connect(vane.address, "/chat").await else {
        panic!("the handshake should have been refused");
    };
    assert_eq!(answer.status(), 426);
    assert_eq!(answer.headers()["x-backend"], "no-ws");
    assert_eq!(
        answer.body().as_deref(),
        Some(&b"not upgrading\n"[..]),
        "the backend's body"
    );
    wait_until("nothing in flight", || vane.in_flight() == [0]).await;
    assert_eq!(vane.metrics().await["vane_tunnels_opened_total{}"], 0.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_with_nothing_to_carry_is_closed_after_its_idle_timeout() {
    let a = WsBackend::echo("a").await;
    let vane = vane_for("[proxy]\ntunnel_idle_timeout = \"300ms\"\n", &[&a]).await;
    let (mut session, _) = open(&vane).await;
    ended(&mut session).await;
    wait_until("the backend's session closed", || a.open() == 0).await;
    wait_until("nothing in flight", || vane.in_flight() == [0]).await;
    assert_eq!(vane.metrics().await["vane_tunnels_open{}"], 0.0);
    vane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_still_open_when_the_drain_ends_is_closed() {
    let a = WsBackend::echo("a").await;
    let vane = vane_for("[proxy]\ndrain_timeout = \"1s\"\n", &[&a]).await;
    let (mut session, _) = open(&vane).await;
    echo(&mut session, Message::text("before the drain")).await;
    let stopping = tokio::spawn(vane.stop());
    ended(&mut session).await;
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("vane stopped despite the open tunnel")
        .expect("the stop");
    wait_until("the backend's session closed", || a.open() == 0).await;
}
