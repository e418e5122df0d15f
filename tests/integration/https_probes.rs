//! `http` checks against a real HTTPS server (Python's `http.server` wrapped in TLS, with a
//! certificate signed by a CA the openssl CLI makes): trusted through `ca-file=`, or any certificate with
//! `insecure=true`, and refused, saying why, when neither is given.

use std::process::{Child, Command, Stdio};

use crate::support::Test;

/// An HTTPS server on 127.0.0.1 serving `dir`, killed on drop; its port.
struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 (`cert.pem`, `key.pem`),
/// as a stack with its own CA has them.
fn certificates(dir: &std::path::Path) {
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=sanctuary test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn serve(dir: &std::path::Path) -> Server {
    let script = r#"
import http.server, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line.trim().parse().expect("the server's port");
    Server(child, port)
}

#[test]
fn https_checks_trust_a_ca_file_or_any_certificate_and_refuse_an_unknown_one() {
    let site = tempfile::tempdir().unwrap();
    certificates(site.path());
    std::fs::write(site.path().join("health.json"), r#"{"status":"ok"}"#).unwrap();
    let server = serve(site.path());
    let url = format!("https://127.0.0.1:{}/health.json", server.1);
    let ca = site.path().join("ca.pem");
    let manifest = format!(
        r#"project "https-probes"
test "trusted" {{
    http "{url}" ca-file="{}" json-path="status" equals="ok"
}}
test "insecure" {{
    http "{url}" insecure=true contains="ok"
}}
test "untrusted" {{
    http "{url}"
}}
"#,
        ca.display()
    );
    let t = || Test::manifest(&manifest).env("NO_COLOR", "1");
    t().args(&["test", "trusted", "insecure"]).run().code(0);
    let out = t().args(&["test", "untrusted"]).run();
    out.code(1);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("certificate"), "{all}");
}
