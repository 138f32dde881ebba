//! SMART scopes for system (backend) clients, in v1 (`system/Patient.read`) and v2
//! (`system/Patient.rs`) syntax, and what they permit.

use std::fmt;

/// What a request does with a resource type, as SMART v2 names the permissions
/// (`c`reate, `r`ead, `u`pdate, `d`elete, `s`earch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interaction {
    /// `c`: create.
    Create,
    /// `r`: read, vread and instance history; downloads of exported files.
    Read,
    /// `u`: update and patch.
    Update,
    /// `d`: delete.
    Delete,
    /// `s`: search and type history; `$export` of a type.
    Search,
}

impl Interaction {
    fn bit(self) -> u8 {
        match self {
            Interaction::Create => 1,
            Interaction::Read => 2,
            Interaction::Update => 4,
            Interaction::Delete => 8,
            Interaction::Search => 16,
        }
    }
}

/// The permissions a v1 `read` scope stands for (`rs`).
const READ: u8 = 2 | 16;
/// The permissions a v1 `write` scope stands for (`cud`).
const WRITE: u8 = 1 | 4 | 8;
/// Every permission (`cruds`, v1 `*`).
const ALL: u8 = READ | WRITE;

/// One `system/` scope: a resource type (or every type) and a set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The resource type, or `None` for `*`.
    resource_type: Option<&'a str>,
    permissions: u8,
    v1: bool,
}

impl<'a> Scope<'a> {
    /// Parses one scope; `None` for anything that is not a `system/` resource scope Haven can
    /// enforce (`patient/…`, `user/…`, `launch`, v2 scopes with a `?` query, unknown letters).
    pub fn parse(text: &'a str) -> Option<Scope<'a>> {
        let rest = text.strip_prefix("system/")?;
        let (resource_type, permissions) = rest.rsplit_once('.')?;
        let resource_type = match resource_type {
            "*" => None,
            t if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric()) => Some(t),
            _ => return None,
        };
        let (permissions, v1) = match permissions {
            "read" => (READ, true),
            "write" => (WRITE, true),
            "*" => (ALL, true),
            letters => (v2_permissions(letters)?, false),
        };
        Some(Scope {
            resource_type,
            permissions,
            v1,
        })
    }

    /// Whether this scope permits `interaction` on `resource_type`.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.resource_type.is_none_or(|t| t == resource_type)
            && self.permissions & interaction.bit() != 0
    }

    /// What both `self` (requested) and `granted` (registered) permit, written in the
    /// requested scope's syntax where it can be.
    fn intersect(&self, granted: &Scope<'a>) -> Option<Scope<'a>> {
        let resource_type = match (self.resource_type, granted.resource_type) {
            (None, other) | (other, None) => other,
            (Some(a), Some(b)) if a == b => Some(a),
            _ => return None,
        };
        let permissions = self.permissions & granted.permissions;
        (permissions != 0).then_some(Scope {
            resource_type,
            permissions,
            v1: self.v1,
        })
    }
}

/// The v2 permission letters, which must come in the order `c r u d s`, each at most once.
fn v2_permissions(letters: &str) -> Option<u8> {
    let mut bits = 0u8;
    let mut last = 0usize;
    for letter in letters.chars() {
        let (index, bit) = match letter {
            'c' => (1, 1),
            'r' => (2, 2),
            'u' => (3, 4),
            'd' => (4, 8),
            's' => (5, 16),
            _ => return None,
        };
        if index <= last {
            return None;
        }
        last = index;
        bits |= bit;
    }
    (bits != 0).then_some(bits)
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "system/{}.", self.resource_type.unwrap_or("*"))?;
        if self.v1 {
            match self.permissions {
                READ => return f.write_str("read"),
                WRITE => return f.write_str("write"),
                ALL => return f.write_str("*"),
                _ => {}
            }
        }
        for (letter, bit) in [('c', 1), ('r', 2), ('u', 4), ('d', 8), ('s', 16)] {
            if self.permissions & bit != 0 {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// A space-separated list of scopes, as granted to an access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// The scopes of a space-separated list, keeping only those [`Scope::parse`] accepts.
    pub fn parse(text: &str) -> Scopes {
        Scopes(
            text.split_ascii_whitespace()
                .filter(|s| Scope::parse(s).is_some())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether no scope is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some scope permits `interaction` on `resource_type`.
    pub fn allows(&self, resource_type: &str, interaction: Interaction) -> bool {
        self.iter().any(|s| s.allows(resource_type, interaction))
    }

    /// Whether some scope permits `interaction` on at least one resource type.
    pub fn allows_any(&self, interaction: Interaction) -> bool {
        self.iter().any(|s| s.permissions & interaction.bit() != 0)
    }

    /// Whether a wildcard scope (`system/*.…`) permits `interaction` on every type.
    pub fn allows_all_types(&self, interaction: Interaction) -> bool {
        self.iter()
            .any(|s| s.resource_type.is_none() && s.permissions & interaction.bit() != 0)
    }

    /// What a client may be given when it asks for `requested` and is registered for
    /// `self`: each requested scope narrowed to what the registration permits (a request
    /// for `system/*.read` by a client registered for `system/Patient.rs` yields
    /// `system/Patient.read`).
    pub fn grant(&self, requested: &str) -> Scopes {
        let mut granted: Vec<String> = Vec::new();
        for asked in requested.split_ascii_whitespace().filter_map(Scope::parse) {
            for registered in self.iter() {
                if let Some(scope) = asked.intersect(&registered) {
                    let text = scope.to_string();
                    if !granted.contains(&text) {
                        granted.push(text);
                    }
                }
            }
        }
        Scopes(granted)
    }

    fn iter(&self) -> impl Iterator<Item = Scope<'_>> {
        self.0.iter().filter_map(|s| Scope::parse(s))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_syntax_permit_the_same_reads() {
        for text in [
            "system/Patient.read",
            "system/Patient.rs",
            "system/Patient.*",
        ] {
            let scopes = Scopes::parse(text);
            assert!(scopes.allows("Patient", Interaction::Read), "{text}");
            assert!(scopes.allows("Patient", Interaction::Search), "{text}");
            assert!(!scopes.allows("Observation", Interaction::Read), "{text}");
        }
        let read_only = Scopes::parse("system/Observation.r");
        assert!(read_only.allows("Observation", Interaction::Read));
        assert!(!read_only.allows("Observation", Interaction::Search));
        let write = Scopes::parse("system/*.write");
        assert!(write.allows("Encounter", Interaction::Update));
        assert!(!write.allows("Encounter", Interaction::Read));
        assert!(Scopes::parse("system/*.rs").allows_all_types(Interaction::Search));
    }

    #[test]
    fn scopes_haven_cannot_enforce_are_dropped() {
        for text in [
            "patient/*.read",
            "user/Patient.rs",
            "launch",
            "system/Patient.rs?category=x",
            "system/Patient.sr",
            "system/Patient.rr",
            "system/Patient.x",
            "system/.rs",
            "openid",
        ] {
            assert!(Scopes::parse(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn a_grant_is_narrowed_to_the_registration() {
        let registered = Scopes::parse("system/Patient.rs system/Observation.read");
        assert_eq!(
            registered.grant("system/*.read").to_string(),
            "system/Patient.read system/Observation.read"
        );
        assert_eq!(
            registered.grant("system/*.rs").to_string(),
            "system/Patient.rs system/Observation.rs"
        );
        assert_eq!(
            registered.grant("system/Patient.cruds").to_string(),
            "system/Patient.rs"
        );
        assert_eq!(
            registered.grant("system/Observation.r").to_string(),
            "system/Observation.r"
        );
        assert!(registered.grant("system/Encounter.read").is_empty());
        assert!(registered.grant("system/*.write").is_empty());
        let everything = Scopes::parse("system/*.*");
        assert_eq!(
            everything
                .grant("system/Group.rs system/*.read")
                .to_string(),
            "system/Group.rs system/*.read"
        );
    }
}
