//! Graceful drain under load: SIGTERM turns readiness 503 at once, the listeners keep serving
//! through the drain delay (so the load balancer can notice), in-flight requests complete, no
//! request fails, and the process exits 0.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const DRAIN_DELAY: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn sigterm_under_load_drains_without_a_failed_request_and_exits_zero() {
    let mut env = test_env();
    env.push(("TOKENMINT__SERVER__DRAIN_DELAY_MS".into(), DRAIN_DELAY.as_millis().to_string()));
    let mut running = start_binary("drain", &env);
    let client = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", running.admin_addr);
    assert_eq!(client.get(&readyz).send().await.unwrap().status(), 200);
    let load = Load::start(running.addr, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;

    running.signal("TERM");
    let terminated = Instant::now();
    // Readiness fails at once.
    loop {
        if client.get(&readyz).send().await.unwrap().status() == 503 {
            break;
        }
        assert!(terminated.elapsed() < Duration::from_millis(250), "readiness still 200 250 ms after SIGTERM");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let not_ready_after = terminated.elapsed();

    // While draining, requests are still served, and each response asks the client to reconnect.
    let response = client
        .post(format!("http://{}/v1/tokens", running.addr))
        .bearer_auth(session_token("alice", &["user"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["connection"], "close");

    // A request that starts during the drain and is still running when the listeners close.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slow = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{",
        session_token("slow", &["user"])
    );
    slow.write_all(head.as_bytes()).await.unwrap();

    // The load balancer notices well inside the drain delay and stops sending.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let results = load.finish().await;

    // After the drain delay the listener is closed: new connections are refused.
    tokio::time::sleep(DRAIN_DELAY.saturating_sub(terminated.elapsed()) + Duration::from_millis(300)).await;
    assert!(tokio::net::TcpStream::connect(running.addr).await.is_err(), "still accepting after the drain delay");

    // The in-flight request completes.
    slow.write_all(b"}").await.unwrap();
    let mut response = String::new();
    slow.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"token\""));

    let status = running.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let exited_after = terminated.elapsed();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.outcome.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} of {} requests failed, e.g. {:?}", failures.len(), results.len(), failures[0]);
    let during_drain = results.iter().filter(|r| r.sent > terminated).count();
    assert!(during_drain > 10, "only {during_drain} requests were served while draining");
    eprintln!(
        "{} requests ({during_drain} while draining), none failed; not ready after {not_ready_after:?}, exited after {exited_after:?}",
        results.len()
    );
    assert!(running.output().contains("draining: readiness fails from now on"));
}

#[tokio::test]
async fn a_second_signal_ends_the_drain_early() {
    let mut env = test_env();
    env.push(("TOKENMINT__SERVER__DRAIN_DELAY_MS".into(), "60000".into()));
    let mut running = start_binary("drain-twice", &env);
    running.signal("TERM");
    running.wait_for_output("draining").await;
    running.signal("INT");
    let status = running.wait_exit(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
}
