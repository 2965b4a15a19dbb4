//! Assume-role end to end: STS AssumeRole (a SigV4-signed form POST, XML answer) against a
//! mock STS reached through `AWS_ENDPOINT_URL_STS`, the role's credentials signing Bedrock
//! calls, their cache and refresh, and STS refusals.

use super::*;

fn sts_answer(expires_at: u64) -> String {
    format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/gateway-bedrock/ai-gateway-bedrock</Arn><AssumedRoleId>AROEXAMPLE:ai-gateway-bedrock</AssumedRoleId></AssumedRoleUser><Credentials><AccessKeyId>{ROLE_KEY}</AccessKeyId><SecretAccessKey>{ROLE_SECRET}</SecretAccessKey><SessionToken>{ROLE_TOKEN}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleResult><ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata></AssumeRoleResponse>",
        aws::iso8601(expires_at)
    )
}

fn role_gateway(bedrock: &Upstream, sts: &Upstream) -> Gateway {
    let aws = format!("          aws_region: eu-west-1\n          aws_role_arn: {ROLE_ARN}\n          session_length_seconds: 1800\n");
    let yaml = format!(
        "endpoints:\n{}",
        endpoint("chat-role", "chat", "bedrock", HAIKU, &aws, bedrock)
    );
    // One worker, so every request reaches the actor that caches the role's credentials.
    Gateway::start_with(
        &yaml,
        &["--workers", "1"],
        &[
            ("AWS_ACCESS_KEY_ID", ENV_KEY),
            ("AWS_SECRET_ACCESS_KEY", ENV_SECRET),
            ("AWS_SESSION_TOKEN", ""),
            ("AWS_ENDPOINT_URL_STS", &sts.base()),
        ],
    )
}

#[actix_rt::test]
async fn assume_role_goes_through_sts_and_caches_until_shortly_before_expiry() {
    let bedrock = Upstream::start();
    let sts = Upstream::start();
    let gw = role_gateway(&bedrock, &sts);
    // The first credentials expire within the refresh margin, so the next request fetches new
    // ones; those last an hour and serve the two requests after it.
    sts.push(Script::raw(200, "text/xml", sts_answer(now() + 60)));
    sts.push(Script::raw(200, "text/xml", sts_answer(now() + 3600)));
    let answer =
        json!({"output": {"message": {"content": [{"text": "ok"}]}}, "stopReason": "end_turn"});
    for _ in 0..4 {
        bedrock.push(Script::json(200, &answer));
        let reply = invoke(
            &gw,
            "chat-role",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        verify_sigv4(
            &bedrock.only_request(),
            &Expect {
                access_key_id: ROLE_KEY,
                secret: ROLE_SECRET,
                token: Some(ROLE_TOKEN),
                region: "eu-west-1",
                service: "bedrock",
            },
        );
        assert_clean(&gw, &[&reply.text]);
    }
    let calls = sts.take_requests();
    assert_eq!(calls.len(), 2, "one refresh, then the cache");
    for r in &calls {
        // AssumeRole: a form POST to the STS endpoint, signed with the environment's keys.
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/"));
        assert_eq!(
            r.header("content-type"),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
        assert_eq!(
            r.text(),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fgateway-bedrock&RoleSessionName=ai-gateway-bedrock&DurationSeconds=1800"
        );
        verify_sigv4(
            r,
            &Expect {
                access_key_id: ENV_KEY,
                secret: ENV_SECRET,
                token: None,
                region: "eu-west-1",
                service: "sts",
            },
        );
    }
}

#[actix_rt::test]
async fn an_sts_refusal_is_a_502_and_nothing_reaches_bedrock() {
    let bedrock = Upstream::start();
    let sts = Upstream::start();
    let gw = role_gateway(&bedrock, &sts);
    let denied = std::fs::read_to_string(format!(
        "{}/tests/fixtures/bedrock/sts/assume_role_access_denied.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    sts.push(Script::raw(403, "text/xml", denied));
    let reply = invoke(
        &gw,
        "chat-role",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(
        reply.json["detail"],
        json!(format!("Could not assume the role '{ROLE_ARN}' through STS: AccessDenied: User: arn:aws:iam::123456789012:user/gateway is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/x"))
    );
    assert_eq!(bedrock.request_count(), 0);
    assert_clean(&gw, &[&reply.text]);
}
