//! The Bedrock `aws_config` block: which of MLflow's four credential shapes a mapping is.

use super::fields::{Obj, Report};
use super::model::Secret;
use super::providers::{AwsConfig, AWS_SESSION_LENGTH_SECONDS};

/// Picks the `aws_config` shape as pydantic's smart union does for
/// `AWSBearerToken | AWSRole | AWSIdAndKey | AWSBaseConfig`: among the shapes the mapping
/// satisfies, the one with the most of its fields set wins, ties going to the earlier shape.
/// `{}` (or only a region) is the base shape, which uses the default AWS credential chain.
pub(crate) fn aws_config(rep: &mut Report, o: &Obj<'_>) -> Option<AwsConfig> {
    const FIELDS: [&str; 7] = [
        "aws_region",
        "aws_bearer_token",
        "aws_role_arn",
        "session_length_seconds",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ];
    o.warn_unknown(rep, &FIELDS);
    let region = o.opt_str(rep, "aws_region").ok()?;
    // Type errors (a number where a string belongs) are reported, not silently routed to
    // another shape, which is what pydantic would do.
    let mut check = Report::default();
    let text = |key: &str, check: &mut Report| o.opt_str(check, key).ok().flatten();
    let bearer = text("aws_bearer_token", &mut check);
    let role = text("aws_role_arn", &mut check);
    let key_id = text("aws_access_key_id", &mut check);
    let secret = text("aws_secret_access_key", &mut check);
    let session_token = text("aws_session_token", &mut check);
    let session_length = o
        .opt_int(&mut check, "session_length_seconds", 0, i64::MAX)
        .ok()
        .flatten();
    if !check.errors.is_empty() {
        rep.errors.extend(check.errors);
        return None;
    }
    let region_set = usize::from(region.is_some());
    let mut best: Option<(usize, AwsConfig, &[&str])> = None;
    let mut consider = |count: usize, shape: AwsConfig, fields: &'static [&'static str]| {
        if best.as_ref().is_none_or(|(n, _, _)| count > *n) {
            best = Some((count, shape, fields));
        }
    };
    if let Some(token) = &bearer {
        consider(
            region_set + 1,
            AwsConfig::BearerToken {
                region: region.clone(),
                bearer_token: Secret::new(token.clone()),
            },
            &["aws_bearer_token"],
        );
    }
    if let Some(role_arn) = &role {
        consider(
            region_set + 1 + usize::from(o.get("session_length_seconds").is_some()),
            AwsConfig::AssumeRole {
                region: region.clone(),
                role_arn: role_arn.clone(),
                session_length_seconds: session_length
                    .map_or(AWS_SESSION_LENGTH_SECONDS, |n| n as u64),
            },
            &["aws_role_arn", "session_length_seconds"],
        );
    }
    if let (Some(id), Some(secret)) = (&key_id, &secret) {
        consider(
            region_set + 2 + usize::from(session_token.is_some()),
            AwsConfig::StaticKeys {
                region: region.clone(),
                access_key_id: id.clone(),
                secret_access_key: Secret::new(secret.clone()),
                session_token: session_token.clone().map(Secret::new),
            },
            &[
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
            ],
        );
    }
    consider(
        region_set,
        AwsConfig::Base {
            region: region.clone(),
        },
        &[],
    );
    let (_, shape, used) = best?;
    // Credentials that the chosen shape does not use are almost always a mistake (an access key
    // without its secret falls back to the default chain); say so.
    for field in &FIELDS[1..] {
        if o.get(field).is_some() && !used.contains(field) {
            rep.warn(
                &o.at(field),
                format!("ignored: aws_config was read as {}", shape_name(&shape)),
            );
        }
    }
    Some(shape)
}

fn shape_name(shape: &AwsConfig) -> &'static str {
    match shape {
        AwsConfig::BearerToken { .. } => "a bearer token (aws_bearer_token)",
        AwsConfig::AssumeRole { .. } => "an assumed role (aws_role_arn)",
        AwsConfig::StaticKeys { .. } => "static keys (aws_access_key_id and aws_secret_access_key)",
        AwsConfig::Base { .. } => "the default AWS credential chain (no usable credentials given)",
    }
}
