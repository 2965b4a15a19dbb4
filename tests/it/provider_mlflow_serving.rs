//! `mlflow-model-serving` end to end: the real binary in front of the scripted mock upstream
//! speaking a served model's `/invocations` (`{"inputs", "params"}` in, `{"predictions"}` out).
//! Covers chat, completions and embeddings on every path, the client `model` travelling in
//! `params`, MLflow's one-message rule, the accepted and refused `predictions` shapes, 501 for
//! streams, and the scoring server's error bodies.

use crate::common::upstream::{Reply as Script, Upstream};
use crate::common::*;
use serde_json::{json, Value};

fn config(up: &Upstream) -> String {
    let mut yaml = String::from("endpoints:\n");
    for kind in ["chat", "completions", "embeddings"] {
        yaml += &format!(
            "  - name: serving-{kind}\n    endpoint_type: llm/v1/{kind}\n    model:\n      provider: mlflow-model-serving\n      name: served-model\n      config:\n        model_server_url: {}\n",
            up.base()
        );
    }
    yaml
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_request" => include_str!("../fixtures/mlflow_serving/chat_request.json"),
        "chat_invocation" => include_str!("../fixtures/mlflow_serving/chat_invocation.json"),
        "predictions_list" => include_str!("../fixtures/mlflow_serving/predictions_list.json"),
        "predictions_choices" => {
            include_str!("../fixtures/mlflow_serving/predictions_choices.json")
        }
        "predictions_invalid_dict" => {
            include_str!("../fixtures/mlflow_serving/predictions_invalid_dict.json")
        }
        "embeddings_invocation" => {
            include_str!("../fixtures/mlflow_serving/embeddings_invocation.json")
        }
        "embeddings_predictions" => {
            include_str!("../fixtures/mlflow_serving/embeddings_predictions.json")
        }
        "error_bad_request" => include_str!("../fixtures/mlflow_serving/error_bad_request.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// Checks `created` is now, then pins it.
fn pin_created(mut body: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let created = body["created"].as_i64().expect("created is an integer");
    assert!((now - created).abs() < 120, "created {created} is not now");
    body["created"] = json!(0);
    body
}

fn assert_invocation(up: &Upstream, expected: &str, what: &str) {
    let req = up.only_request();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/invocations"),
        "{what}"
    );
    assert_eq!(req.header("authorization"), None, "{what}");
    assert_eq!(req.text(), expected, "{what}");
}

#[actix_rt::test]
async fn chat_sends_the_one_message_and_reads_every_prediction() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let request = fixture("chat_request");
    let mut v1 = request.clone();
    v1["model"] = json!("serving-chat");
    for (path, body) in [
        ("/endpoints/serving-chat/invocations", request.clone()),
        ("/gateway/serving-chat/invocations", request.clone()),
        ("/v1/chat/completions", v1),
    ] {
        up.push(Script::json(200, &fixture("predictions_list")));
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            pin_created(reply.json),
            json!({"id": null, "object": "chat.completion", "created": 0, "model": "served-model",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "MLflow is an open source platform.", "tool_calls": null, "refusal": null}, "finish_reason": null},
                    {"index": 1, "message": {"role": "assistant", "content": "It manages the ML lifecycle.", "tool_calls": null, "refusal": null}, "finish_reason": null}],
                "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null},
                "provider": "mlflow-model-serving"}),
            "{path}"
        );
        assert_invocation(&up, &fixture("chat_invocation").to_string(), path);
    }
}

#[actix_rt::test]
async fn the_client_model_is_accepted_and_travels_in_params() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    up.push(Script::json(200, &fixture("predictions_choices")));
    let reply = post_json(
        &gw.url("/endpoints/serving-completions/invocations"),
        &json!({"prompt": "hi", "model": "my-model-v2", "max_tokens": 10, "temperature": 0.5}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        pin_created(reply.json),
        json!({"id": null, "object": "text_completion", "created": 0, "model": "served-model",
            "choices": [{"index": 0, "text": "MLflow is an open source platform.", "finish_reason": null}],
            "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}})
    );
    assert_invocation(
        &up,
        r#"{"inputs":["hi"],"params":{"n":1,"max_tokens":10,"model":"my-model-v2","temperature":0.5}}"#,
        "completions with model",
    );
    // On /v1 the `model` names the endpoint and is not forwarded.
    up.push(Script::json(200, &fixture("predictions_list")));
    let reply = post_json(
        &gw.url("/v1/completions"),
        &json!({"prompt": "hi", "model": "serving-completions"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["choices"].as_array().unwrap().len(), 2);
    assert_invocation(
        &up,
        r#"{"inputs":["hi"],"params":{"n":1}}"#,
        "/v1 completions",
    );
}

#[actix_rt::test]
async fn embeddings_send_inputs_and_read_vectors() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let body =
        json!({"input": ["a sentence", "another sentence"], "output_value": "token_embeddings"});
    let mut v1 = body.clone();
    v1["model"] = json!("serving-embeddings");
    for (path, body) in [
        ("/endpoints/serving-embeddings/invocations", body.clone()),
        ("/v1/embeddings", v1),
    ] {
        up.push(Script::json(200, &fixture("embeddings_predictions")));
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(
            reply.json,
            json!({"object": "list", "data": [
                {"object": "embedding", "embedding": [0.1, -0.234, 0.002], "index": 0},
                {"object": "embedding", "embedding": [0.222, -0.111, 1.0], "index": 1}],
                "model": "served-model", "usage": {"prompt_tokens": null, "total_tokens": null}}),
            "{path}"
        );
        assert_invocation(&up, &fixture("embeddings_invocation").to_string(), path);
    }
}

#[actix_rt::test]
async fn several_messages_and_streams_are_refused_before_sending() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let cases = [
        (
            "/endpoints/serving-chat/invocations",
            json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}),
            422,
            "MLflow chat models are only capable of processing a single query at a time. The request submitted consists of 2 queries.",
        ),
        (
            "/endpoints/serving-chat/invocations",
            json!({"messages": [{"role": "user", "content": "q"}], "stream": true}),
            501,
            "The chat streaming route is not implemented for MLflow Model Serving models.",
        ),
        (
            "/endpoints/serving-completions/invocations",
            json!({"prompt": "q", "stream": true}),
            501,
            "The completions streaming route is not implemented for MLflow Model Serving models.",
        ),
    ];
    for (path, body, status, message) in cases {
        let reply = post_json(&gw.url(path), &body).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert_eq!(reply.json, json!({ "detail": message }));
    }
    assert_eq!(up.request_count(), 0);
}

#[actix_rt::test]
async fn unreadable_predictions_are_502_and_server_errors_pass_through() {
    let up = Upstream::start();
    let gw = Gateway::start(&config(&up));
    let path = "/endpoints/serving-chat/invocations";
    let body = json!({"messages": [{"role": "user", "content": "q"}]});
    up.push(Script::json(200, &fixture("predictions_invalid_dict")));
    let reply = post_json(&gw.url(path), &body).await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert!(reply.json["detail"]
        .as_str()
        .unwrap()
        .starts_with("1 validation error for ServingTextResponse\npredictions\n  Value error, The dict format is invalid for this route type. Ensure the served model returns a dict key containing 'choices'"));
    up.push(Script::json(200, &json!({"predictions": [1, 2]})));
    let reply = post_json(
        &gw.url("/endpoints/serving-embeddings/invocations"),
        &json!({"input": "x"}),
    )
    .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    up.push(Script::json(400, &fixture("error_bad_request")));
    let reply = post_json(&gw.url(path), &body).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.json, json!({"detail": fixture("error_bad_request")}));
    assert_eq!(up.take_requests().len(), 3);
}
