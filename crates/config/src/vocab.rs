//! Enum vocabularies: each config enum has ONE name table (`NAMES`), and
//! everything that spells its values derives from it: `as_str`, `Display`,
//! the validator's `choice` (and its did-you-mean), serde and the JSON
//! Schema.
//!
//! Invariant (checked by the tests): every variant is in its table exactly
//! once, and `from_name(v.as_str()) == Some(v)`.

/// Implements `as_str`, `from_name`, `Display`, `Serialize`,
/// `Deserialize` and `JsonSchema` for an enum with a
/// `const NAMES: &'static [(&'static str, Self)]`.
macro_rules! vocabulary {
    ($ty:ident) => {
        impl $ty {
            /// The value's name in the file (and the API).
            pub fn as_str(self) -> &'static str {
                Self::NAMES
                    .iter()
                    .find(|(_, v)| *v == self)
                    .map_or("", |(name, _)| *name)
            }

            /// The value named `name` exactly as in [`Self::NAMES`].
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| *v)
            }

            /// `a, b, c`: the names, for messages.
            pub fn listing() -> String {
                Self::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_name(&name).ok_or_else(|| {
                    <D::Error as serde::de::Error>::custom(format!(
                        "unknown value `{name}`, expected one of {}",
                        Self::listing()
                    ))
                })
            }
        }

        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($ty))
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                schemars::json_schema!({ "type": "string", "enum": names })
            }
        }
    };
}

pub(crate) use vocabulary;

#[cfg(test)]
mod tests {
    use crate::{
        Concurrency, DependencyCondition, HealthCheckType, InitialState, LogFormat, LogLevel,
        OnFailure, ProcessType, RestartPolicy, ScaleDownOrder,
    };

    /// Every variant (the `match`es make a new variant a compile error
    /// here until it is listed), each in its table exactly once.
    fn all() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
        fn row<T: Copy + PartialEq + std::fmt::Display>(
            ty: &'static str,
            variants: &[T],
            names: &'static [(&'static str, T)],
            as_str: fn(T) -> &'static str,
        ) -> (&'static str, Vec<&'static str>, Vec<&'static str>) {
            for v in variants {
                assert_eq!(
                    names.iter().filter(|(_, x)| x == v).count(),
                    1,
                    "{ty}: {v} not in NAMES exactly once"
                );
            }
            assert_eq!(names.len(), variants.len(), "{ty}: NAMES has extras");
            (
                ty,
                variants.iter().map(|v| as_str(*v)).collect(),
                names.iter().map(|(n, _)| *n).collect(),
            )
        }
        let log_format = |v: LogFormat| match v {
            LogFormat::Text | LogFormat::Json => v,
        };
        let log_level = |v: LogLevel| match v {
            LogLevel::Debug | LogLevel::Info | LogLevel::Warn | LogLevel::Error => v,
        };
        let restart = |v: RestartPolicy| match v {
            RestartPolicy::Always | RestartPolicy::OnFailure | RestartPolicy::Never => v,
        };
        let hc = |v: HealthCheckType| match v {
            HealthCheckType::Tcp | HealthCheckType::Http | HealthCheckType::Exec => v,
        };
        let kind = |v: ProcessType| match v {
            ProcessType::Longrun | ProcessType::Oneshot => v,
        };
        let on_failure = |v: OnFailure| match v {
            OnFailure::Continue | OnFailure::Shutdown => v,
        };
        let condition = |v: DependencyCondition| match v {
            DependencyCondition::Started
            | DependencyCondition::Healthy
            | DependencyCondition::Completed
            | DependencyCondition::CompletedSuccessfully => v,
        };
        let initial = |v: InitialState| match v {
            InitialState::Started | InitialState::Stopped => v,
        };
        let concurrency = |v: Concurrency| match v {
            Concurrency::Forbid | Concurrency::Allow | Concurrency::Replace => v,
        };
        let order = |v: ScaleDownOrder| match v {
            ScaleDownOrder::Highest | ScaleDownOrder::IdleFirst => v,
        };
        vec![
            row(
                "LogFormat",
                &[LogFormat::Text, LogFormat::Json].map(log_format),
                LogFormat::NAMES,
                LogFormat::as_str,
            ),
            row(
                "LogLevel",
                &[
                    LogLevel::Debug,
                    LogLevel::Info,
                    LogLevel::Warn,
                    LogLevel::Error,
                ]
                .map(log_level),
                LogLevel::NAMES,
                LogLevel::as_str,
            ),
            row(
                "RestartPolicy",
                &[
                    RestartPolicy::Always,
                    RestartPolicy::OnFailure,
                    RestartPolicy::Never,
                ]
                .map(restart),
                RestartPolicy::NAMES,
                RestartPolicy::as_str,
            ),
            row(
                "HealthCheckType",
                &[
                    HealthCheckType::Tcp,
                    HealthCheckType::Http,
                    HealthCheckType::Exec,
                ]
                .map(hc),
                HealthCheckType::NAMES,
                HealthCheckType::as_str,
            ),
            row(
                "ProcessType",
                &[ProcessType::Longrun, ProcessType::Oneshot].map(kind),
                ProcessType::NAMES,
                ProcessType::as_str,
            ),
            row(
                "OnFailure",
                &[OnFailure::Continue, OnFailure::Shutdown].map(on_failure),
                OnFailure::NAMES,
                OnFailure::as_str,
            ),
            row(
                "DependencyCondition",
                &[
                    DependencyCondition::Started,
                    DependencyCondition::Healthy,
                    DependencyCondition::Completed,
                    DependencyCondition::CompletedSuccessfully,
                ]
                .map(condition),
                DependencyCondition::NAMES,
                DependencyCondition::as_str,
            ),
            row(
                "InitialState",
                &[InitialState::Started, InitialState::Stopped].map(initial),
                InitialState::NAMES,
                InitialState::as_str,
            ),
            row(
                "Concurrency",
                &[
                    Concurrency::Forbid,
                    Concurrency::Allow,
                    Concurrency::Replace,
                ]
                .map(concurrency),
                Concurrency::NAMES,
                Concurrency::as_str,
            ),
            row(
                "ScaleDownOrder",
                &[ScaleDownOrder::Highest, ScaleDownOrder::IdleFirst].map(order),
                ScaleDownOrder::NAMES,
                ScaleDownOrder::as_str,
            ),
        ]
    }

    #[test]
    fn every_variant_is_named_once() {
        for (ty, by_as_str, by_table) in all() {
            let mut sorted = by_table.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), by_table.len(), "{ty}: duplicate name");
            let mut a = by_as_str.clone();
            a.sort_unstable();
            assert_eq!(a, sorted, "{ty}: as_str disagrees with NAMES");
        }
    }

    fn round_trips<T>(names: &[(&str, T)], as_str: fn(T) -> &'static str)
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display,
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for &(name, v) in names {
            assert_eq!(as_str(v), name);
            assert_eq!(v.to_string(), name);
            let json = serde_json::to_string(&v).ok();
            assert_eq!(json, Some(format!("\"{name}\"")));
            let back: Option<T> = json.and_then(|j| serde_json::from_str(&j).ok());
            assert_eq!(back, Some(v));
        }
        assert!(serde_json::from_str::<T>("\"no-such-name\"").is_err());
    }

    #[test]
    fn names_round_trip() {
        round_trips(LogFormat::NAMES, LogFormat::as_str);
        round_trips(LogLevel::NAMES, LogLevel::as_str);
        round_trips(RestartPolicy::NAMES, RestartPolicy::as_str);
        round_trips(HealthCheckType::NAMES, HealthCheckType::as_str);
        round_trips(ProcessType::NAMES, ProcessType::as_str);
        round_trips(OnFailure::NAMES, OnFailure::as_str);
        round_trips(DependencyCondition::NAMES, DependencyCondition::as_str);
        round_trips(InitialState::NAMES, InitialState::as_str);
        round_trips(Concurrency::NAMES, Concurrency::as_str);
        round_trips(ScaleDownOrder::NAMES, ScaleDownOrder::as_str);
        for &(name, v) in RestartPolicy::NAMES {
            assert_eq!(RestartPolicy::from_name(name), Some(v));
        }
        assert_eq!(RestartPolicy::from_name("ALWAYS"), None);
    }

    #[test]
    fn schema_lists_the_names() {
        let s = schemars::schema_for!(RestartPolicy).to_value();
        assert_eq!(
            s.get("enum"),
            Some(&serde_json::json!(["always", "on-failure", "never"]))
        );
        assert_eq!(s.get("type"), Some(&serde_json::json!("string")));
    }
}
