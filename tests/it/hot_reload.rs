//! Hot reload against a running gateway: adds, removals and changes appear within 2 s; an invalid
//! edit keeps the old config; editor-style atomic renames, Kubernetes-style symlink swaps and
//! SIGHUP all work; and streams running during five reloads all complete.

use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::common::*;
use futures_util::future::join_all;
use serde_json::{json, Value};

const VISIBLE_WITHIN: Duration = Duration::from_secs(2);

fn config_with(names: &[&str]) -> String {
    let mut yaml = String::from("endpoints:\n");
    for name in names {
        yaml += &mock_endpoint(name, "llm/v1/chat", "chunks: 3");
    }
    yaml
}

async fn endpoint_status(gw: &Gateway, name: &str) -> u16 {
    get(&gw.url(&format!("/api/2.0/endpoints/{name}")))
        .await
        .status
}

async fn model_name(gw: &Gateway, name: &str) -> Value {
    get(&gw.url(&format!("/api/2.0/endpoints/{name}")))
        .await
        .json["model"]["name"]
        .clone()
}

#[actix_rt::test]
async fn add_remove_and_change_an_endpoint() {
    let gw = Gateway::start(&config_with(&["a"]));
    gw.save_config(&config_with(&["a", "b"]));
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            endpoint_status(&gw, "b").await == 200
        })
        .await,
        "added endpoint not visible"
    );
    // Every worker sees it, not just the one that answered first.
    for _ in 0..10 {
        let reply = post_json(
            &gw.url("/endpoints/b/invocations"),
            &json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(reply.status, 200);
    }

    gw.save_config(&config_with(&["b"]));
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            endpoint_status(&gw, "a").await == 404
        })
        .await,
        "removed endpoint still served"
    );

    gw.save_config(&config_with(&["b"]).replace("name: model-b", "name: model-b2"));
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            model_name(&gw, "b").await == "model-b2"
        })
        .await,
        "changed endpoint not visible"
    );
    let reply = post_json(
        &gw.url("/endpoints/b/invocations"),
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.json["model"], "model-b2");
}

#[actix_rt::test]
async fn an_invalid_edit_keeps_the_old_config_serving() {
    let gw = Gateway::start(&config_with(&["a"]));
    gw.save_config(
        "endpoints:\n  - name: a\n    endpoint_type: llm/v1/nope\n    model: {provider: mock}\n",
    );
    assert!(
        gw.wait_for_log("invalid configuration", Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
    assert_eq!(endpoint_status(&gw, "a").await, 200);
    assert_eq!(model_name(&gw, "a").await, "model-a");
    // Syntax errors too.
    gw.save_config("endpoints: [\n");
    actix_rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(endpoint_status(&gw, "a").await, 200);
    // A later good edit is picked up.
    gw.save_config(&config_with(&["c"]));
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            endpoint_status(&gw, "c").await == 200
        })
        .await
    );
}

#[actix_rt::test]
async fn a_missing_variable_in_a_reload_is_rejected() {
    let gw = Gateway::start(&config_with(&["a"]));
    gw.save_config(
        "endpoints:\n  - name: o\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n      config: {openai_api_key: $SWITCHYARD_TEST_UNSET_VARIABLE}\n",
    );
    assert!(
        gw.wait_for_log("SWITCHYARD_TEST_UNSET_VARIABLE", Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
    assert_eq!(endpoint_status(&gw, "a").await, 200);
    assert_eq!(endpoint_status(&gw, "o").await, 404);
}

#[actix_rt::test]
async fn kubernetes_style_symlink_swap() {
    // <dir>/gateway.yaml -> ..data/gateway.yaml, ..data -> v1; the update points ..data at v2 by
    // renaming a new symlink over it, as the kubelet does for ConfigMap volumes.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("v1")).unwrap();
    std::fs::write(root.join("v1/gateway.yaml"), config_with(&["one"])).unwrap();
    symlink("v1", root.join("..data")).unwrap();
    symlink("..data/gateway.yaml", root.join("gateway.yaml")).unwrap();
    let path = root.join("gateway.yaml");
    let gw = Gateway::spawn(dir, path, &[], &[]);
    assert_eq!(endpoint_status(&gw, "one").await, 200);

    let root = gw.dir.path();
    std::fs::create_dir(root.join("v2")).unwrap();
    std::fs::write(root.join("v2/gateway.yaml"), config_with(&["two"])).unwrap();
    symlink("v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("v1")).unwrap();
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            endpoint_status(&gw, "two").await == 200
        })
        .await,
        "{}",
        gw.logs()
    );
    assert_eq!(endpoint_status(&gw, "one").await, 404);
}

#[actix_rt::test]
async fn sighup_forces_a_reload() {
    // A key file changes without the YAML changing: only a forced reload can notice.
    let gw = Gateway::start(&config_with(&["a"]));
    gw.signal("HUP");
    assert!(
        gw.wait_for_log("reload requested", Duration::from_secs(3)),
        "{}",
        gw.logs()
    );
    assert_eq!(endpoint_status(&gw, "a").await, 200);
}

#[actix_rt::test]
async fn streams_survive_five_reloads_without_a_failure() {
    let base = |model: &str| {
        format!(
            "endpoints:\n  - name: s\n    endpoint_type: llm/v1/chat\n    model:\n      provider: mock\n      name: {model}\n      config: {{chunks: 10, chunk_delay_ms: 15}}\n"
        )
    };
    let gw = Gateway::start(&base("m0"));
    let url = gw.url("/endpoints/s/invocations");
    let body =
        json!({"messages": [{"role": "user", "content": "a b c d e f g h i j"}], "stream": true});

    let reloads = async {
        for i in 1..=5 {
            actix_rt::time::sleep(Duration::from_millis(300)).await;
            gw.save_config(&base(&format!("m{i}")));
        }
    };
    // 200 streams, 20 at a time, each ~150 ms long, overlapping the five reloads.
    let traffic = async {
        let mut outcomes = Vec::new();
        for _ in 0..10 {
            let batch = (0..20).map(|_| async {
                let reply = post_json(&url, &body).await;
                let events = sse_data(&reply.text);
                let complete = reply.status == 200
                    && events.len() == 10
                    && events.iter().all(|e| {
                        serde_json::from_str::<Value>(e)
                            .map(|c| c.get("error").is_none())
                            .unwrap_or(false)
                    });
                (complete, reply.status, reply.text)
            });
            outcomes.extend(join_all(batch).await);
        }
        outcomes
    };
    let ((), outcomes) = futures_util::future::join(reloads, traffic).await;
    let failures: Vec<_> = outcomes.iter().filter(|(ok, _, _)| !ok).collect();
    assert_eq!(outcomes.len(), 200);
    assert!(
        failures.is_empty(),
        "{} failed, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        eventually(VISIBLE_WITHIN, || async {
            model_name(&gw, "s").await == "m5"
        })
        .await
    );
}

#[actix_rt::test]
async fn a_file_written_constantly_next_to_the_config_does_not_hold_back_a_reload() {
    // Poll set to 60 s, so only the notify path can pick the change up; a log line appended
    // every 50 ms beside the config keeps the directory's events coming throughout.
    let gw = Gateway::start_with(
        &config_with(&["a"]),
        &[],
        &[("SWITCHYARD_WATCH__POLL_INTERVAL_MS", "60000")],
    );
    let log = gw.config_path.with_file_name("busy.log");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(&log).unwrap();
            for _ in 0..200 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                writeln!(file, "busy").unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    gw.save_config(&config_with(&["a", "b"]));
    let visible = eventually(VISIBLE_WITHIN, || async {
        endpoint_status(&gw, "b").await == 200
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    assert!(visible, "the reload waited for the directory to go quiet");
}
