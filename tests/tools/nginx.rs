//! Whose address a request comes from, behind a real nginx running the shipped load-balancer
//! config: a client cannot choose it with any forwarding header.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// A real nginx (Debian's) running `deploy/compose/nginx.conf` with its upstream pointed at
/// `upstream`, listening on a free loopback port. Stopped when dropped.
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(upstream: SocketAddr) -> Self {
        let dir = std::env::temp_dir().join(format!("tokenmint-nginx-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let shipped = std::fs::read_to_string(repo_path("deploy/compose/nginx.conf")).unwrap();
        let site = shipped
            .replace("tokenmint-1:8080", &upstream.to_string())
            .replace("tokenmint-2:8080", &upstream.to_string())
            .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
        assert_ne!(site, shipped);
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{site}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
        let mut child = std::process::Command::new(nginx)
            .args(["-p", dir.to_str().unwrap(), "-c", dir.join("nginx.conf").to_str().unwrap(), "-e"])
            .arg(dir.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test installs Debian's nginx)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx never listened: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `client_ip` of every audit line the binary wrote.
fn audited_client_ips(running: &RunningBinary) -> Vec<String> {
    running
        .output()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "token minted")
        .map(|line| line["client_ip"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Sends 30 token requests through nginx from 127.0.0.2, each with forged forwarding headers of
/// every kind naming a new address; returns how many were minted.
async fn forge_through(nginx: &Nginx) -> usize {
    let client = client_from("127.0.0.2");
    let mut minted = 0;
    for i in 0..30 {
        let response = client
            .post(format!("http://{}/v1/tokens", nginx.addr))
            .bearer_auth(session_token(&format!("user{i}"), &["user"]))
            .header("forwarded", format!("for=203.0.113.{i}"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .header("x-real-ip", format!("192.0.2.{i}"))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => minted += 1,
            429 => {}
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
    }
    minted
}

/// Behind the shipped nginx config, a client's own `Forwarded`, `X-Forwarded-For` and
/// `X-Real-IP` choose nothing: the per-IP limit (burst 5) holds after 5 requests, and every
/// audit line names the address nginx saw. Once, a client's `Forwarded` won over the proxy's
/// `X-Forwarded-For`: 30 of 30 requests went through and each audit line named a forged address.
#[tokio::test]
async fn forged_forwarding_headers_through_a_real_nginx_choose_no_address() {
    for (header, expected_ip) in [("x-forwarded-for", "127.0.0.2"), ("forwarded", "127.0.0.1")] {
        // With client_ip_header = "forwarded" behind this nginx (which writes X-Forwarded-For
        // and clears Forwarded), no header names the client, so the proxy's address is used:
        // the forged Forwarded never arrives.
        let mut env = test_env();
        env.extend(
            [
                ("TOKENMINT__SERVER__TRUSTED_PROXIES", "127.0.0.1/32"),
                ("TOKENMINT__SERVER__CLIENT_IP_HEADER", header),
                ("TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE", "1"),
                ("TOKENMINT__RATE_LIMIT__PER_IP__BURST", "5"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let running = start_binary(&format!("nginx-{header}"), &env);
        let nginx = Nginx::start(running.addr);
        let minted = forge_through(&nginx).await;
        assert_eq!(minted, 5, "client_ip_header = {header}: the per-IP burst of 5 held");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ips = audited_client_ips(&running);
        assert_eq!(ips.len(), 5);
        assert!(ips.iter().all(|ip| ip == expected_ip), "client_ip_header = {header}: {ips:?}");
        drop(nginx);
        running.stop();
    }
}
