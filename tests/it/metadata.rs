//! The read-only HTTP surface: endpoint list/get with MLflow's paging, legacy and 3.0 views,
//! limits stubs, JSON 404/405, trailing-slash redirects, docs and OpenAPI, and no secrets anywhere.

use crate::common::*;
use serde_json::json;

const CANARY: &str = "sk-canary-7f3a9c1e5b";

fn config() -> String {
    format!(
        r#"endpoints:
  - name: chat
    endpoint_type: llm/v1/chat
    model:
      provider: OpenAI
      name: gpt-4o-mini
      config:
        openai_api_key: {CANARY}
        # Nothing listens on port 9: the invocation below fails without leaving 127.0.0.1.
        openai_api_base: http://127.0.0.1:9/v1
    limit:
      renewal_period: minute
      calls: 10
  - name: embed.v2
    endpoint_type: llm/v1/embeddings
    model:
      provider: mock
routes:
  - name: split
    task_type: llm/v1/chat
    destinations:
      - name: chat
        traffic_percentage: 100
"#
    )
}

#[actix_rt::test]
async fn list_and_get_match_mlflows_shapes() {
    let gw = Gateway::start(&config());
    let reply = get(&gw.url("/api/2.0/endpoints/")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.text,
        r#"{"endpoints":[{"name":"chat","endpoint_type":"llm/v1/chat","model":{"name":"gpt-4o-mini","provider":"openai"},"endpoint_url":"/gateway/chat/invocations","limit":{"calls":10,"key":null,"renewal_period":"minute"}},{"name":"embed.v2","endpoint_type":"llm/v1/embeddings","model":{"name":null,"provider":"mock"},"endpoint_url":"/gateway/embed.v2/invocations","limit":null}],"next_page_token":null}"#
    );
    for path in ["/api/2.0/endpoints/chat", "/api/3.0/gateway/endpoint/chat"] {
        let reply = get(&gw.url(path)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json["endpoint_url"], "/gateway/chat/invocations");
    }
    let reply = get(&gw.url("/api/2.0/endpoints/split")).await;
    assert_eq!(reply.status, 404, "traffic routes are not endpoints");
    assert_eq!(
        reply.json,
        json!({"detail": "The endpoint 'split' is not present or active on the server. Please verify the endpoint name."})
    );
}

#[actix_rt::test]
async fn legacy_and_route_views() {
    let gw = Gateway::start(&config());
    let reply = get(&gw.url("/api/2.0/gateway/routes/")).await;
    assert_eq!(reply.json["routes"][0]["route_type"], "llm/v1/chat");
    assert_eq!(
        reply.json["routes"][0]["route_url"],
        "/gateway/chat/invocations"
    );
    assert_eq!(reply.json["next_page_token"], json!(null));
    let reply = get(&gw.url("/api/2.0/gateway/routes/embed.v2")).await;
    assert_eq!(reply.json["name"], "embed.v2");
    let reply = get(&gw.url("/api/2.0/gateway/routes/nope")).await;
    assert_eq!(
        reply.json,
        json!({"detail": "The route 'nope' is not present or active on the server. Please verify the route name."})
    );
    let reply = get(&gw.url("/api/3.0/gateway/route/split")).await;
    assert_eq!(
        reply.text,
        r#"{"name":"split","task_type":"llm/v1/chat","destinations":[{"name":"chat","traffic_percentage":100}],"routing_strategy":"TRAFFIC_SPLIT"}"#
    );
}

#[actix_rt::test]
async fn paging_follows_mlflows_tokens() {
    let mut yaml = String::from("endpoints:\n");
    for i in 0..3005 {
        yaml += &format!(
            "  - name: e{i}\n    endpoint_type: llm/v1/chat\n    model: {{provider: mock}}\n"
        );
    }
    let gw = Gateway::start(&yaml);
    let first = get(&gw.url("/api/2.0/endpoints/")).await;
    assert_eq!(first.json["endpoints"].as_array().unwrap().len(), 3000);
    assert_eq!(first.json["next_page_token"], "eyJpbmRleCI6IDMwMDB9");
    let second = get(&gw.url("/api/2.0/endpoints/?page_token=eyJpbmRleCI6IDMwMDB9")).await;
    let names: Vec<&str> = second.json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e3000", "e3001", "e3002", "e3003", "e3004"]);
    assert_eq!(second.json["next_page_token"], json!(null));
    let bad = get(&gw.url("/api/2.0/endpoints/?page_token=%21%21")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json["detail"].as_str().unwrap().contains("page_token"));
}

#[actix_rt::test]
async fn health_limits_404_405_and_redirects() {
    let gw = Gateway::start(&config());
    assert_eq!(get(&gw.url("/health")).await.text, r#"{"status":"OK"}"#);
    let reply = get(&gw.url("/api/2.0/endpoints/limits/chat")).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            501,
            json!({"detail": "The get_limits API is not available yet."})
        )
    );
    let reply = post_json(
        &gw.url("/api/2.0/endpoints/limits/"),
        &json!({"route": "chat", "limits": []}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (
            501,
            json!({"detail": "The set_limits API is not available yet."})
        )
    );
    let reply = post_json(&gw.url("/api/2.0/gateway/limits/"), &json!({"limits": 3})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json["detail"][0]["loc"], json!(["body", "route"]));

    let reply = get(&gw.url("/no/such/path")).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (404, json!({"detail": "Not Found"}))
    );
    let reply = post_json(&gw.url("/health"), &json!({})).await;
    assert_eq!(
        (reply.status, reply.json.clone()),
        (405, json!({"detail": "Method Not Allowed"}))
    );

    let no_redirects = awc::Client::builder().disable_redirects().finish();
    let response = no_redirects
        .get(gw.url("/api/2.0/endpoints"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 307);
    assert_eq!(
        response.headers().get("location").unwrap(),
        "/api/2.0/endpoints/"
    );
    let response = no_redirects.get(gw.url("/health/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 307);
    assert_eq!(response.headers().get("location").unwrap(), "/health");
    let response = no_redirects.get(gw.url("/")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 307);
}

#[actix_rt::test]
async fn docs_and_openapi_are_served_offline() {
    let gw = Gateway::start(&config());
    let docs = get(&gw.url("/docs/")).await;
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    assert!(
        !docs.text.contains("cdn.jsdelivr.net"),
        "the UI must not need a CDN"
    );
    let spec = get(&gw.url("/openapi.json")).await;
    assert_eq!(spec.status, 200);
    let paths = spec.json["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/api/2.0/endpoints/",
        "/api/2.0/endpoints/{name}",
        "/endpoints/{name}/invocations",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(
        spec.json["components"]["schemas"]
            .as_object()
            .unwrap()
            .len()
            >= 5
    );
}

#[actix_rt::test]
async fn no_response_carries_a_key() {
    let gw = Gateway::start(&config());
    let paths = [
        "/api/2.0/endpoints/",
        "/api/2.0/endpoints/chat",
        "/api/3.0/gateway/endpoint/chat",
        "/api/2.0/gateway/routes/",
        "/api/2.0/gateway/routes/chat",
        "/api/3.0/gateway/route/split",
        "/openapi.json",
    ];
    for path in paths {
        let reply = get(&gw.url(path)).await;
        assert!(!reply.text.contains(CANARY), "{path} leaked the key");
        assert!(!format!("{:?}", reply.headers).contains(CANARY));
    }
    let reply = post_json(
        &gw.url("/endpoints/chat/invocations"),
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert!(!reply.text.contains(CANARY));
    assert!(!gw.logs().contains(CANARY), "a log line carried the key");
}
