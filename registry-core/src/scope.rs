//! Token-auth scopes, per Docker's token-auth spec:
//!
//! ```text
//! scope             := resourcescope [ ' ' resourcescope ]*
//! resourcescope     := resourcetype ":" resourcename ":" action [ ',' action ]*
//! resourcetype      := resourcetypevalue [ '(' resourcetypevalue ')' ]
//! resourcetypevalue := /[a-z0-9]+/
//! resourcename      := [ hostname '/' ] component [ '/' component ]*
//! hostname          := hostcomponent ['.' hostcomponent]* [':' port-number]
//! action            := /[a-z]*/
//! ```
//!
//! The resource name may itself hold a `:` (a host with a port), so the type ends at the first `:`
//! and the actions start after the last one. `*` is the wildcard action.
//!
//! Granting is by [`Scope::intersection`]: a requested known action (`pull`, `push`, `delete`) is
//! granted when the grant names it or holds `*`; an unknown action is kept when parsed and printed, but
//! granted only when the grant names exactly that action — never by `*`, so a future action can't be
//! opened by accident.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, quote};

/// One action of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests and blobs.
    Pull,
    /// Write manifests and blobs.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
    /// The wildcard `*`.
    All,
    /// An action this registry does not know (kept, never implied by `*`).
    Other(String),
}

impl Action {
    /// Parses one action: `[a-z]+` or `*`.
    pub fn parse(input: &str) -> Result<Action, Error> {
        Ok(match input {
            "pull" => Action::Pull,
            "push" => Action::Push,
            "delete" => Action::Delete,
            "*" => Action::All,
            other if !other.is_empty() && other.bytes().all(|b| b.is_ascii_lowercase()) => {
                Action::Other(other.to_owned())
            }
            _ => return Err(Error::InvalidScope { input: quote(input), reason: "actions are [a-z]+ or '*'" }),
        })
    }

    /// The action as written.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::All => "*",
            Action::Other(s) => s,
        }
    }

    /// Whether a grant holding `granted` allows this requested action.
    fn granted_by(&self, granted: &BTreeSet<Action>) -> bool {
        granted.contains(self)
            || (matches!(self, Action::Pull | Action::Push | Action::Delete) && granted.contains(&Action::All))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource scope: `type[(class)]:name:action[,action]*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The resource type, e.g. `repository` or `registry`.
    pub resource_type: String,
    /// The optional resource class, e.g. `plugin` in `repository(plugin)`.
    pub resource_class: Option<String>,
    /// The resource name, e.g. `library/app`, `localhost:5000/app` or `catalog`.
    pub name: String,
    /// The actions, in canonical order (pull, push, delete, `*`, then unknown ones).
    pub actions: BTreeSet<Action>,
}

/// Longest scope accepted, in bytes.
const MAX_SCOPE_LEN: usize = 1024;

impl Scope {
    /// A `repository` scope.
    pub fn repository(name: impl Into<String>, actions: impl IntoIterator<Item = Action>) -> Scope {
        Scope {
            resource_type: "repository".into(),
            resource_class: None,
            name: name.into(),
            actions: actions.into_iter().collect(),
        }
    }

    /// `registry:catalog:*`.
    pub fn catalog() -> Scope {
        Scope {
            resource_type: "registry".into(),
            resource_class: None,
            name: "catalog".into(),
            actions: [Action::All].into_iter().collect(),
        }
    }

    /// Parses one resource scope.
    pub fn parse(input: &str) -> Result<Scope, Error> {
        let invalid = |reason| Error::InvalidScope { input: quote(input), reason };
        if input.len() > MAX_SCOPE_LEN {
            return Err(invalid("longer than 1024 characters"));
        }
        let (ty, rest) = input.split_once(':').ok_or_else(|| invalid("missing ':' after the resource type"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| invalid("missing ':' before the actions"))?;
        let (resource_type, resource_class) = match ty.split_once('(') {
            Some((t, class)) => {
                let class = class.strip_suffix(')').ok_or_else(|| invalid("unclosed resource class"))?;
                (t, Some(class))
            }
            None => (ty, None),
        };
        let type_value = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !type_value(resource_type) || !resource_class.is_none_or(type_value) {
            return Err(invalid("resource type and class are [a-z0-9]+"));
        }
        if name.is_empty() {
            return Err(invalid("empty resource name"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')) {
            return Err(invalid("resource name holds a character outside [A-Za-z0-9._/:-]"));
        }
        let actions = actions.split(',').map(Action::parse).collect::<Result<BTreeSet<_>, _>>()?;
        Ok(Scope {
            resource_type: resource_type.to_owned(),
            resource_class: resource_class.map(str::to_owned),
            name: name.to_owned(),
            actions,
        })
    }

    /// Parses a space-separated list of scopes (the `scope` form field of the OAuth2 POST).
    pub fn parse_list(input: &str) -> Result<Vec<Scope>, Error> {
        input.split(' ').filter(|s| !s.is_empty()).map(Scope::parse).collect()
    }

    /// Whether both name the same resource (type, class and name).
    pub fn same_resource(&self, other: &Scope) -> bool {
        self.resource_type == other.resource_type
            && self.resource_class == other.resource_class
            && self.name == other.name
    }

    /// The union of two scopes of the same resource; `None` for different resources.
    pub fn union(&self, other: &Scope) -> Option<Scope> {
        self.same_resource(other).then(|| {
            let mut s = self.clone();
            s.actions.extend(other.actions.iter().cloned());
            s
        })
    }

    /// What of this (requested) scope `granted` allows: the same resource with the actions both
    /// allow (see the module docs for `*` and unknown actions). Empty actions when nothing or a
    /// different resource is granted.
    pub fn intersection(&self, granted: &Scope) -> Scope {
        let actions = if self.same_resource(granted) {
            self.actions.iter().filter(|a| a.granted_by(&granted.actions)).cloned().collect()
        } else {
            BTreeSet::new()
        };
        Scope { actions, ..self.clone() }
    }

    /// Whether this (granted) scope allows `action` on its resource.
    pub fn allows(&self, action: &Action) -> bool {
        action.granted_by(&self.actions)
    }

    /// Merges scopes of the same resource into one each, keeping first-seen order.
    pub fn merge(scopes: impl IntoIterator<Item = Scope>) -> Vec<Scope> {
        let mut out: Vec<Scope> = Vec::new();
        for s in scopes {
            match out.iter_mut().find(|o| o.same_resource(&s)) {
                Some(o) => o.actions.extend(s.actions),
                None => out.push(s),
            }
        }
        out
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource_type)?;
        if let Some(class) = &self.resource_class {
            write!(f, "({class})")?;
        }
        write!(f, ":{}:", self.name)?;
        for (i, a) in self.actions.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Scope::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_token_spec_examples() {
        let s = Scope::parse("repository:samalba/my-app:pull,push").expect("valid");
        assert_eq!(s.resource_type, "repository");
        assert_eq!(s.name, "samalba/my-app");
        assert!(s.actions.contains(&Action::Pull) && s.actions.contains(&Action::Push));
        assert_eq!(s.to_string(), "repository:samalba/my-app:pull,push");

        let c = Scope::parse("registry:catalog:*").expect("valid");
        assert_eq!(c, Scope::catalog());

        let p = Scope::parse("repository(plugin):vieux/sshfs:pull").expect("valid");
        assert_eq!(p.resource_class.as_deref(), Some("plugin"));
        assert_eq!(p.to_string(), "repository(plugin):vieux/sshfs:pull");

        let h = Scope::parse("repository:localhost:5000/foo/bar:pull").expect("valid");
        assert_eq!(h.name, "localhost:5000/foo/bar");
        assert_eq!(h.to_string(), "repository:localhost:5000/foo/bar:pull");
    }

    #[test]
    fn canonical_order_of_actions() {
        let s = Scope::parse("repository:a:push,pull,pull").expect("valid");
        assert_eq!(s.to_string(), "repository:a:pull,push");
    }

    #[test]
    fn invalid_scopes() {
        for input in [
            "",
            "repository",
            "repository:a",
            "repository::pull",
            "repository:a:",
            "repository:a:PULL",
            "repository:a:pull,",
            "Repository:a:pull",
            "repository(:a:pull",
            "repository(x:a:pull",
            "repository():a:pull",
            "repository:a b:pull",
            "repository:a\"b:pull",
        ] {
            assert!(Scope::parse(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn union_and_intersection() {
        let pull = Scope::parse("repository:a:pull").expect("valid");
        let push = Scope::parse("repository:a:push").expect("valid");
        let other = Scope::parse("repository:b:pull").expect("valid");
        assert_eq!(pull.union(&push).expect("same").to_string(), "repository:a:pull,push");
        assert!(pull.union(&other).is_none());

        let requested = Scope::parse("repository:a:pull,push,delete").expect("valid");
        assert_eq!(requested.intersection(&pull).to_string(), "repository:a:pull");
        assert!(requested.intersection(&other).actions.is_empty());
        let all = Scope::parse("repository:a:*").expect("valid");
        assert_eq!(requested.intersection(&all).to_string(), "repository:a:pull,push,delete");
    }

    #[test]
    fn unknown_actions_are_never_granted_by_wildcard() {
        let requested = Scope::parse("repository:a:pull,frobnicate").expect("valid");
        let all = Scope::parse("repository:a:*").expect("valid");
        assert_eq!(requested.intersection(&all).to_string(), "repository:a:pull");
        let exact = Scope::parse("repository:a:frobnicate").expect("valid");
        assert_eq!(requested.intersection(&exact).to_string(), "repository:a:frobnicate");
        assert!(!all.allows(&Action::Other("frobnicate".into())));
        assert!(all.allows(&Action::Delete));
    }

    #[test]
    fn lists_and_merging() {
        let list = Scope::parse_list("repository:a:pull  repository:a:push registry:catalog:*").expect("valid");
        assert_eq!(list.len(), 3);
        let merged = Scope::merge(list);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].to_string(), "repository:a:pull,push");
    }
}
