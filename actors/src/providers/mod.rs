//! Provider translations: pure code per provider between the unified schemas and the provider's
//! wire format, plus the built-in `mock` provider.

pub mod mock;
