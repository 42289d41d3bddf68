//! A request through the real API router, in process. Input, HTTP-like:
//! `METHOD PATH [AUTH]\n` then `Name: value\n` header lines, an empty
//! line, and the body. With `AUTH` the router requires the token
//! `fuzz-token`. Every non-2xx answer must carry a JSON body.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use libfuzzer_sys::fuzz_target;
use phpeek_server::api::{router, ApiState};
use phpeek_server::auth::TokenCheck;
use tower::ServiceExt;

const CONFIG: &str = "\
processes:
  web:
    command: [\"sleep\", \"3600\"]
    scale: 0
    max_scale: 2
  worker:
    command: [\"sleep\", \"3600\"]
    scale: 0
    max_scale: 1
";

struct Rig {
    rt: tokio::runtime::Runtime,
    open: Router,
    locked: Router,
    _core: phpeek_core::Core,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let path = std::env::temp_dir().join(format!("phpeek-fuzz-{}.yaml", std::process::id()));
        std::fs::write(&path, CONFIG).unwrap();
        let env = phpeek_config::Env::from_pairs([("CPU_COUNT", "2"), ("MEMORY_LIMIT_MB", "1024")]);
        let config = phpeek_config::parse_str(CONFIG, "fuzz.yaml", &env).unwrap();
        let core = rt.block_on(async { phpeek_core::start(config, path).unwrap() });
        let handle = core.handle.clone();
        let open = router(ApiState {
            handle: handle.clone(),
            auth: None,
        });
        let locked = router(ApiState {
            handle,
            auth: Some(TokenCheck::new("fuzz-token")),
        });
        Rig {
            rt,
            open,
            locked,
            _core: core,
        }
    })
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let (first, mut rest) = split_line(data);
    let mut words = first.splitn(3, |&b| b == b' ');
    let Ok(method) = Method::from_bytes(words.next().unwrap_or_default()) else {
        return;
    };
    let path = words.next().unwrap_or(b"/");
    let auth = words.next() == Some(b"AUTH");
    let mut req = Request::builder().method(method.clone()).uri(path);
    loop {
        let (line, tail) = split_line(rest);
        rest = tail;
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        req = req.header(&line[..colon], value);
    }
    let Ok(req) = req.body(Body::from(rest.to_vec())) else {
        return;
    };
    let rig = rig();
    let app = if auth { &rig.locked } else { &rig.open };
    let (status, body) = rig.rt.block_on(async {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .unwrap();
        (status, body)
    });
    if !status.is_success() && method != Method::HEAD {
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
            panic!(
                "{status} answer is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
});
