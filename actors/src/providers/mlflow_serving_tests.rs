//! MLflow Model Serving translation tests on recorded fixtures (`tests/fixtures/mlflow_serving/`):
//! the `/invocations` payloads MLflow sends and the `predictions` shapes a scoring server returns.

use super::*;
use serde_json::json;

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_request" => {
            include_str!("../../../tests/fixtures/mlflow_serving/chat_request.json")
        }
        "chat_invocation" => {
            include_str!("../../../tests/fixtures/mlflow_serving/chat_invocation.json")
        }
        "completions_invocation" => {
            include_str!("../../../tests/fixtures/mlflow_serving/completions_invocation.json")
        }
        "embeddings_invocation" => {
            include_str!("../../../tests/fixtures/mlflow_serving/embeddings_invocation.json")
        }
        "predictions_list" => {
            include_str!("../../../tests/fixtures/mlflow_serving/predictions_list.json")
        }
        "predictions_single_key" => {
            include_str!("../../../tests/fixtures/mlflow_serving/predictions_single_key.json")
        }
        "predictions_choices" => {
            include_str!("../../../tests/fixtures/mlflow_serving/predictions_choices.json")
        }
        "predictions_invalid_dict" => {
            include_str!("../../../tests/fixtures/mlflow_serving/predictions_invalid_dict.json")
        }
        "embeddings_predictions" => {
            include_str!("../../../tests/fixtures/mlflow_serving/embeddings_predictions.json")
        }
        "embeddings_flat" => {
            include_str!("../../../tests/fixtures/mlflow_serving/embeddings_flat.json")
        }
        "error_bad_request" => {
            include_str!("../../../tests/fixtures/mlflow_serving/error_bad_request.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn wire() -> MlflowServingWire {
    MlflowServingWire::new(
        &MlflowModelServingConfig {
            server_url: "http://serving.test:5001".to_owned(),
        },
        Some("served".to_owned()),
        Provider::MlflowModelServing,
    )
}

fn body(kind: EndpointType, request: Value) -> String {
    let request = UnifiedRequest::validate(kind, request).unwrap();
    let upstream = wire().request(&request).unwrap();
    assert_eq!(upstream.url, "http://serving.test:5001/invocations");
    assert!(upstream.headers.is_empty());
    String::from_utf8(upstream.body).unwrap()
}

#[test]
fn chat_request_fixture_becomes_the_chat_invocation_fixture() {
    assert_eq!(
        body(EndpointType::Chat, fixture("chat_request")),
        fixture("chat_invocation").to_string()
    );
}

#[test]
fn completions_invocation_fixture_is_mlflows_capture() {
    assert_eq!(
        body(
            EndpointType::Completions,
            json!({"prompt": "hi", "max_tokens": 10, "temperature": 0.5})
        ),
        fixture("completions_invocation").to_string()
    );
}

#[test]
fn embeddings_invocation_fixture_keeps_extras_as_params() {
    assert_eq!(
        body(
            EndpointType::Embeddings,
            json!({"input": ["a sentence", "another sentence"], "output_value": "token_embeddings"})
        ),
        fixture("embeddings_invocation").to_string()
    );
    // A lone string is wrapped; no extras means no params.
    assert_eq!(
        body(EndpointType::Embeddings, json!({"input": "x"})),
        r#"{"inputs":["x"]}"#
    );
}

#[test]
fn the_client_model_travels_in_params() {
    assert_eq!(
        body(
            EndpointType::Completions,
            json!({"prompt": "hi", "model": "v2"})
        ),
        r#"{"inputs":["hi"],"params":{"n":1,"model":"v2"}}"#
    );
}

#[test]
fn chat_takes_exactly_one_message() {
    let request = UnifiedRequest::validate(
        EndpointType::Chat,
        json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}),
    )
    .unwrap();
    let error = wire().request(&request).unwrap_err();
    assert_eq!(
        (error.status, error.detail),
        (422, json!("MLflow chat models are only capable of processing a single query at a time. The request submitted consists of 2 queries."))
    );
}

#[test]
fn streams_are_501_before_sending() {
    for (kind, request, route) in [
        (
            EndpointType::Chat,
            json!({"messages": [{"role": "user", "content": "q"}], "stream": true}),
            "chat",
        ),
        (
            EndpointType::Completions,
            json!({"prompt": "q", "stream": true}),
            "completions",
        ),
    ] {
        let request = UnifiedRequest::validate(kind, request).unwrap();
        let error = wire().request(&request).unwrap_err();
        assert_eq!(
            (error.status, error.detail),
            (501, json!(format!("The {route} streaming route is not implemented for MLflow Model Serving models.")))
        );
    }
}

#[test]
fn predictions_list_fixture_gives_one_choice_each() {
    let chat = chat_response(
        fixture("predictions_list"),
        "served",
        "mlflow-model-serving",
        7,
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({"id": null, "object": "chat.completion", "created": 7, "model": "served",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "MLflow is an open source platform.", "tool_calls": null, "refusal": null}, "finish_reason": null},
                {"index": 1, "message": {"role": "assistant", "content": "It manages the ML lifecycle.", "tool_calls": null, "refusal": null}, "finish_reason": null}],
            "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null},
            "provider": "mlflow-model-serving"})
    );
    let completions = completions_response(fixture("predictions_list"), "served", 7).unwrap();
    assert_eq!(
        serde_json::to_value(&completions).unwrap(),
        json!({"id": null, "object": "text_completion", "created": 7, "model": "served",
            "choices": [
                {"index": 0, "text": "MLflow is an open source platform.", "finish_reason": null},
                {"index": 1, "text": "It manages the ML lifecycle.", "finish_reason": null}],
            "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}})
    );
}

#[test]
fn predictions_single_key_fixture_uses_its_value() {
    assert_eq!(
        text_predictions(&fixture("predictions_single_key")).unwrap(),
        ["MLflow is an open source platform."]
    );
}

#[test]
fn predictions_choices_fixture_uses_choices() {
    assert_eq!(
        text_predictions(&fixture("predictions_choices")).unwrap(),
        ["MLflow is an open source platform."]
    );
}

#[test]
fn predictions_invalid_dict_fixture_is_mlflows_502() {
    let error = text_predictions(&fixture("predictions_invalid_dict")).unwrap_err();
    assert_eq!(
        (error.status, error.kind),
        (502, ErrorKind::UpstreamProtocol)
    );
    assert_eq!(
        error.detail,
        json!("1 validation error for ServingTextResponse\npredictions\n  Value error, The dict format is invalid for this route type. Ensure the served model returns a dict key containing 'choices' [type=value_error, input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.14/v/value_error")
    );
}

#[test]
fn other_text_shapes_fail_like_pydantic() {
    let cases = [
        (json!({"outputs": ["a"]}), "predictions\n  Field required [type=missing, input_type=dict]"),
        (json!({"predictions": []}), "predictions\n  Value error, The input list is empty [type=value_error, input_type=list]"),
        (json!({"predictions": {"choices": []}}), "predictions\n  Value error, The input list is empty [type=value_error, input_type=dict]"),
        (json!({"predictions": "a"}), "predictions\n  Input should be a valid list [type=list_type, input_type=str]"),
        (json!({"predictions": ["a", 1]}), "predictions.1\n  Input should be a valid string [type=string_type, input_type=int]"),
    ];
    for (body, expected) in cases {
        let error = text_predictions(&body).unwrap_err();
        let detail = error.detail.as_str().unwrap().to_owned();
        assert!(
            detail.starts_with(&format!(
                "1 validation error for ServingTextResponse\n{expected}"
            )),
            "{body}: {detail}"
        );
        assert_eq!(error.status, 502);
    }
}

#[test]
fn embeddings_predictions_fixture_accepts_integers_inside_vectors() {
    let response = embeddings_response(fixture("embeddings_predictions"), "served").unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"object": "list", "data": [
            {"object": "embedding", "embedding": [0.1, -0.234, 0.002], "index": 0},
            {"object": "embedding", "embedding": [0.222, -0.111, 1.0], "index": 1}],
            "model": "served", "usage": {"prompt_tokens": null, "total_tokens": null}})
    );
}

#[test]
fn embeddings_flat_fixture_is_one_vector() {
    assert_eq!(
        embedding_predictions(&fixture("embeddings_flat")).unwrap(),
        vec![vec![0.1, -0.234, 0.002]]
    );
}

#[test]
fn bad_embeddings_are_502() {
    for (body, expected) in [
        (json!({"predictions": [1, 2]}), "predictions.0\n  Input should be a valid list [type=list_type, input_type=int]"),
        (json!({"predictions": [[]]}), "predictions\n  Value error, One or more lists in the returned prediction response are empty"),
        (json!({"predictions": []}), "predictions\n  Value error, The input list is empty"),
        (json!({"predictions": {"a": [1.0]}}), "predictions\n  Input should be a valid list [type=list_type, input_type=dict]"),
        (json!({"predictions": [["x"]]}), "predictions.0.0\n  Input should be a valid number"),
    ] {
        let error = embedding_predictions(&body).unwrap_err();
        let detail = error.detail.as_str().unwrap().to_owned();
        assert!(
            detail.starts_with(&format!("1 validation error for EmbeddingsResponse\n{expected}")),
            "{body}: {detail}"
        );
        assert_eq!(error.status, 502);
    }
}

#[test]
fn error_statuses_pass_the_scoring_servers_body_through() {
    for status in [400, 404, 500, 503] {
        let error = crate::upstream::status_error(status, &fixture("error_bad_request"));
        assert_eq!(
            (error.status, error.kind, error.detail),
            (
                status,
                ErrorKind::UpstreamStatus,
                fixture("error_bad_request")
            )
        );
    }
}
