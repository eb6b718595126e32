//! The hash maps and sets used inside the translations: the standard ones with
//! [`foldhash`]'s fast hasher in place of SipHash. Their keys are mostly `Type/id` strings
//! and statement ids, hashed several times per resource; SipHash took a few per cent of
//! the time of a translation. foldhash is seeded per process, as the standard hasher is,
//! so nothing here may depend on the order of iteration (nothing did before either).

pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
