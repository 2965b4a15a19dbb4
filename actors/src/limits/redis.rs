//! Counters in Redis, shared by every gateway process that points at the same server. One Lua
//! script increments the window and sets its expiry atomically on the server, so N processes
//! admit exactly the limit together.

use redis::aio::ConnectionManager;

use super::window::Decision;

/// INCR the window's key; on its first hit give it the window's lifetime; return the count and
/// the milliseconds left. Atomic because Redis runs a script without interleaving.
const HIT_SCRIPT: &str = r#"
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"#;

/// Key prefix, so Switchyard's counters are easy to find and cannot collide with other users.
const PREFIX: &str = "switchyard:ratelimit";

/// Add tokens to a budget window, opening it (with its lifetime) on the first charge.
const CHARGE_SCRIPT: &str = r#"
local total = redis.call('INCRBY', KEYS[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return total
"#;

/// Read a budget window: the tokens in it and the milliseconds left (0 and -2 when none).
const USED_SCRIPT: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
return {used, redis.call('PTTL', KEYS[1])}
"#;

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
    charge: redis::Script,
    used: redis::Script,
}

impl RedisStore {
    /// Connects (with automatic reconnection afterwards). Fails if the URL is invalid; an
    /// unreachable server is not an error here: the manager keeps retrying in the background.
    pub async fn connect(
        url: &str,
        timeout: std::time::Duration,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            script: redis::Script::new(HIT_SCRIPT),
            charge: redis::Script::new(CHARGE_SCRIPT),
            used: redis::Script::new(USED_SCRIPT),
        })
    }

    pub async fn hit(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        limit: u64,
    ) -> Result<Decision, redis::RedisError> {
        let redis_key = format!("{PREFIX}:{}:{endpoint}:{key}", period_ms);
        let mut connection = self.connection.clone();
        let (count, ttl): (u64, i64) = self
            .script
            .key(redis_key)
            .arg(period_ms.max(1))
            .invoke_async(&mut connection)
            .await?;
        Ok(Decision::from_count(count, limit, ttl.max(0) as u64))
    }

    pub async fn tokens_used(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
    ) -> Result<(u64, u64), redis::RedisError> {
        let mut connection = self.connection.clone();
        let (used, ttl): (u64, i64) = self
            .used
            .key(format!("{PREFIX}:tokens:{period_ms}:{endpoint}:{key}"))
            .invoke_async(&mut connection)
            .await?;
        Ok((used, if ttl > 0 { ttl as u64 } else { period_ms }))
    }

    pub async fn charge_tokens(
        &self,
        endpoint: &str,
        key: &str,
        period_ms: u64,
        amount: u64,
    ) -> Result<(), redis::RedisError> {
        let mut connection = self.connection.clone();
        let _: u64 = self
            .charge
            .key(format!("{PREFIX}:tokens:{period_ms}:{endpoint}:{key}"))
            .arg(period_ms.max(1))
            .arg(amount)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }
}
