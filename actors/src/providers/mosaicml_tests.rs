//! MosaicML translation tests on recorded fixtures (`tests/fixtures/mosaicml/`): the `predict`
//! payloads (Llama-2 prompts included), `outputs` replies and the error re-labelling.

use super::*;
use crate::config::Secret;
use serde_json::json;

fn fixture(name: &str) -> Value {
    let text = match name {
        "chat_request" => include_str!("../../../tests/fixtures/mosaicml/chat_request.json"),
        "chat_predict" => include_str!("../../../tests/fixtures/mosaicml/chat_predict.json"),
        "completions_predict" => {
            include_str!("../../../tests/fixtures/mosaicml/completions_predict.json")
        }
        "embeddings_predict" => {
            include_str!("../../../tests/fixtures/mosaicml/embeddings_predict.json")
        }
        "text_outputs" => include_str!("../../../tests/fixtures/mosaicml/text_outputs.json"),
        "embedding_outputs" => {
            include_str!("../../../tests/fixtures/mosaicml/embedding_outputs.json")
        }
        "error_max_output_tokens" => {
            include_str!("../../../tests/fixtures/mosaicml/error_max_output_tokens.json")
        }
        "error_prompt_tokens" => {
            include_str!("../../../tests/fixtures/mosaicml/error_prompt_tokens.json")
        }
        "error_unauthorized" => {
            include_str!("../../../tests/fixtures/mosaicml/error_unauthorized.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

fn wire() -> MosaicMlWire {
    MosaicMlWire::new(
        &MosaicMlConfig {
            api_key: Secret::new("sk-test-mosaic"),
            api_base: "https://models.hosted-on.mosaicml.hosting".to_owned(),
        },
        Some("llama2-70b-chat".to_owned()),
        Provider::MosaicMl,
    )
}

fn upstream(kind: EndpointType, body: Value) -> Result<UpstreamRequest, GatewayError> {
    wire().request(&UnifiedRequest::validate(kind, body).unwrap())
}

#[test]
fn chat_request_fixture_becomes_the_chat_predict_fixture() {
    let request = upstream(EndpointType::Chat, fixture("chat_request")).unwrap();
    assert_eq!(
        request.url,
        "https://models.hosted-on.mosaicml.hosting/llama2-70b-chat/v1/predict"
    );
    assert_eq!(
        request.headers,
        vec![("authorization", "sk-test-mosaic".to_owned())]
    );
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        fixture("chat_predict").to_string()
    );
}

#[test]
fn completions_predict_fixture() {
    let request = upstream(
        EndpointType::Completions,
        json!({"prompt": "Tell me a joke", "max_tokens": 16, "temperature": 0.2, "top_k": 5}),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        fixture("completions_predict").to_string()
    );
}

#[test]
fn embeddings_predict_fixture() {
    let request = upstream(
        EndpointType::Embeddings,
        json!({"input": "Represent this sentence", "instruction": "Represent"}),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        fixture("embeddings_predict").to_string()
    );
}

fn messages(list: Value) -> Vec<Message> {
    match UnifiedRequest::validate(EndpointType::Chat, json!({"messages": list})).unwrap() {
        UnifiedRequest::Chat(chat) => chat.messages,
        _ => unreachable!(),
    }
}

#[test]
fn llama2_prompts_follow_mlflow() {
    let cases = [
        (
            json!([{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]),
            "<s>[INST] <<SYS>> sys <</SYS>> q1 [/INST] a1 </s><s>[INST] q2 [/INST]",
        ),
        (
            json!([{"role": "user", "content": "hi"}]),
            "<s>[INST] hi [/INST]",
        ),
        (
            json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
            "<s>[INST] q [/INST] a ",
        ),
        (
            json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]),
            "<s>[INST] a\nb [/INST]",
        ),
    ];
    for (list, expected) in cases {
        assert_eq!(
            llama2_prompt(&messages(list.clone())).unwrap(),
            expected,
            "{list}"
        );
    }
}

#[test]
fn parameter_and_role_rules_use_mlflows_messages() {
    let cases = [
        (EndpointType::Chat, json!({"messages": [{"role": "tool", "content": "x"}]}),
            "An invalid request structure was submitted. Invalid role tool inputted. Must be one of 'system', 'user', or 'assistant'."),
        (EndpointType::Chat, json!({"messages": [{"role": "tool", "content": "x"}], "max_new_tokens": 3}),
            "Invalid parameter max_new_tokens. Use max_tokens instead."),
        (EndpointType::Completions, json!({"prompt": "x", "max_new_tokens": 3}),
            "Invalid parameter max_new_tokens. Use max_tokens instead."),
        (EndpointType::Embeddings, json!({"input": "x", "inputs": ["y"]}),
            "Invalid parameter inputs. Use input instead."),
    ];
    for (kind, body, message) in cases {
        let error = upstream(kind, body).unwrap_err();
        assert_eq!(
            (error.status, error.kind, error.detail),
            (422, ErrorKind::InvalidParameter, json!(message))
        );
    }
}

#[test]
fn streams_are_501_before_sending() {
    let error = upstream(
        EndpointType::Chat,
        json!({"messages": [{"role": "user", "content": "q"}], "stream": true}),
    )
    .unwrap_err();
    assert_eq!(
        (error.status, error.detail),
        (
            501,
            json!("The chat streaming route is not implemented for MosaicML models.")
        )
    );
}

#[test]
fn text_outputs_fixture_becomes_choices() {
    let outputs = || serde_json::from_value::<WireOutputs>(fixture("text_outputs")).unwrap();
    let chat = chat_response(outputs(), "llama2-70b-chat", "mosaicml", 5).unwrap();
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({"id": null, "object": "chat.completion", "created": 5, "model": "llama2-70b-chat",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Why did the chicken cross the road?", "tool_calls": null, "refusal": null}, "finish_reason": null}],
            "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null},
            "provider": "mosaicml"})
    );
    let completions = completions_response(outputs(), "mpt-7b-instruct", 5).unwrap();
    assert_eq!(
        serde_json::to_value(&completions).unwrap(),
        json!({"id": null, "object": "text_completion", "created": 5, "model": "mpt-7b-instruct",
            "choices": [{"index": 0, "text": "Why did the chicken cross the road?", "finish_reason": null}],
            "usage": {"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}})
    );
}

#[test]
fn embedding_outputs_fixture_becomes_vectors() {
    let outputs = serde_json::from_value::<WireOutputs>(fixture("embedding_outputs")).unwrap();
    let response = embeddings_response(outputs, "instructor-large").unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"object": "list", "data": [
            {"object": "embedding", "embedding": [3.25, 0.7685547, 2.65625], "index": 0},
            {"object": "embedding", "embedding": [-0.30126953, -2.3554688, 1.2597656], "index": 1}],
            "model": "instructor-large", "usage": {"prompt_tokens": null, "total_tokens": null}})
    );
}

#[test]
fn unreadable_outputs_are_502() {
    for (kind, body) in [
        (EndpointType::Chat, json!({"output": ["x"]})),
        (EndpointType::Completions, json!({"outputs": [1]})),
        (EndpointType::Embeddings, json!({"outputs": ["x"]})),
    ] {
        let error = wire().response(kind, body).unwrap_err();
        assert_eq!(
            (error.status, error.kind),
            (502, ErrorKind::UpstreamProtocol)
        );
    }
}

#[test]
fn error_mapping_relabels_token_limits_for_text_routes_only() {
    // (status, fixture, route, expected status)
    let table = [
        (500, "error_max_output_tokens", EndpointType::Chat, 422),
        (500, "error_prompt_tokens", EndpointType::Completions, 422),
        (
            500,
            "error_max_output_tokens",
            EndpointType::Embeddings,
            500,
        ),
        (400, "error_max_output_tokens", EndpointType::Chat, 400),
        (500, "error_unauthorized", EndpointType::Chat, 500),
        (401, "error_unauthorized", EndpointType::Completions, 401),
        (503, "error_unauthorized", EndpointType::Chat, 503),
    ];
    for (status, name, kind, expected) in table {
        let error = crate::upstream::status_error(status, &fixture(name));
        let mapped = wire().upstream_error(kind, error);
        assert_eq!(
            (mapped.status, mapped.detail.clone()),
            (expected, fixture(name)),
            "{status} {name} {kind:?}"
        );
    }
}
