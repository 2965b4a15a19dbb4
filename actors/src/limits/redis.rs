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

#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    script: redis::Script,
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
}
