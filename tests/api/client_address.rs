//! Whose address a request comes from: a client cannot choose it with a forwarding header it
//! sends directly, nor hold every connection slot from one address. (Behind a real nginx:
//! `tests/tools/nginx.rs`.)

use std::time::Duration;

use crate::helpers::*;

/// A direct client of a service that trusts loopback proxies but reads X-Forwarded-For: its own
/// `Forwarded` is ignored, whatever it says.
#[tokio::test]
async fn a_forwarded_header_the_proxy_does_not_write_is_ignored() {
    let app = spawn_app_with(&[
        ("TOKENMINT__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
        ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1"),
        ("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "3"),
    ])
    .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = app
            .client
            .post(app.url("/v1/tokens"))
            .bearer_auth(session_token("alice", &["user"]))
            .header("forwarded", format!("for=203.0.113.{i}"))
            .header("x-forwarded-for", "198.51.100.1")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
}

/// Thousands of half-sent requests from one address once held every connection slot, and every
/// other client got 503. Now the flood is capped at its own share while 127.0.0.2 keeps minting.
#[tokio::test]
async fn a_connection_flood_from_one_address_leaves_others_served() {
    let app = spawn_app_with(&[
        ("TOKENMINT__SERVER__MAX_CONNECTIONS", "512"),
        ("TOKENMINT__SERVER__MAX_CONNECTIONS_PER_IP", "64"),
    ])
    .await;
    let addr = app.addr;
    let mut flood = Vec::new();
    for _ in 0..2000 {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await
        else {
            continue;
        };
        let half_sent = b"POST /v1/tokens HTTP/1.1\r\nHost: x\r\n";
        if tokio::io::AsyncWriteExt::write_all(&mut stream, half_sent).await.is_ok() {
            flood.push(stream);
        }
    }
    assert!(flood.len() > 1500, "only {} flood connections opened", flood.len());
    let other = client_from("127.0.0.2");
    for _ in 0..20 {
        let response =
            other.post(app.url("/v1/tokens")).bearer_auth(session_token("bob", &["user"])).send().await.unwrap();
        assert_eq!(response.status(), 200, "a second address is served during the flood");
    }
    let metrics = app.client.get(app.admin_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let refused = metric_value(&metrics, "tokenmint_connections_refused_total{limit=\"per_ip\"}");
    assert!(refused >= 1400.0, "{refused} flood connections refused at the per-address cap");
    assert_eq!(metric_value(&metrics, "tokenmint_connections_refused_total{limit=\"listener\"}"), 0.0);
    drop(flood);
}
