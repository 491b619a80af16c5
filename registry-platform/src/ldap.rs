//! Signing in through an LDAP directory (Harbor's `ldap_auth`), with `ldap3` on rustls: the
//! configuration ([`LdapConfig`], from the system settings, the search password sealed there),
//! a person's check (bind as the search DN, find exactly one entry under the base DN by the
//! filter and the uid attribute, bind as that entry with the password; the admin group by the
//! entry's membership attribute or the group's members; their groups the same two ways), the
//! ping, and the user and group searches behind `/ldap/*` (the accounts sign users in through it
//! while `auth_mode` is `ldap_auth`: see [`crate::signin`]).
//!
//! `ldap://` (optionally upgraded with StartTLS) and `ldaps://`; certificates verified against
//! the system's roots and an optional CA (PEM) unless verification is off. Names are escaped
//! into filters (RFC 4515); an empty password never binds (it would be an anonymous bind).

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use registry_auth::{Profile, SecretKey};

use crate::selectors::Invalid;
use crate::settings::SystemSettings;

/// Entries a user search returns at most.
const SEARCH_LIMIT: i32 = 100;

/// How to reach and read the directory.
#[derive(Clone, Default)]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// The DN searches bind as (empty: anonymous).
    pub search_dn: String,
    /// Its password.
    pub search_password: String,
    /// Where people are searched.
    pub base_dn: String,
    /// An extra filter people must match (`(objectClass=person)`; empty: none).
    pub filter: String,
    /// The attribute holding the name people sign in with (`uid`, `sAMAccountName`).
    pub uid: String,
    /// 0 base, 1 one level, 2 subtree (Harbor's numbers).
    pub scope: i64,
    /// Seconds a connection may take.
    pub timeout_secs: u64,
    /// Whether the server's certificate is verified.
    pub verify_cert: bool,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// A CA certificate (PEM) the server's is verified against, besides the system's.
    pub ca_certificate: String,
    /// The DN of the group whose members are system admins (empty: none).
    pub group_admin_dn: String,
    /// The attribute of a person's entry listing their groups (`memberOf`).
    pub group_membership_attribute: String,
    /// Where groups are searched (empty: a person's groups are only those their entry lists).
    pub group_base_dn: String,
    /// A filter groups must match (empty: none).
    pub group_filter: String,
    /// The attribute holding a group's name (`cn`).
    pub group_name_attribute: String,
    /// The group search scope (Harbor's numbers).
    pub group_scope: i64,
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("search_dn", &self.search_dn)
            .field("base_dn", &self.base_dn)
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

/// A directory that cannot be used: it cannot be reached, refuses the search DN, or answers
/// with an error (the text names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapError(pub String);

impl std::fmt::Display for LdapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LdapError {}

/// A person found in the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Their entry.
    pub dn: String,
    /// The name they sign in with.
    pub username: String,
    /// E-mail (`mail`).
    pub email: String,
    /// Full name (`displayName`, else `cn`).
    pub realname: String,
    /// The groups their entry lists (the membership attribute).
    pub groups: Vec<String>,
}

impl LdapConfig {
    /// The configuration in `settings`, the search password opened with `key`.
    pub fn of(settings: &SystemSettings, key: Option<&SecretKey>) -> Result<LdapConfig, LdapError> {
        let search_password = match (&settings.ldap_search_password, key) {
            (Some(sealed), Some(key)) => {
                key.open(sealed).map_err(|e| LdapError(format!("opening the LDAP search password: {e}")))?
            }
            (Some(_), None) => return Err(LdapError("the LDAP search password is sealed and no key is set".into())),
            (None, _) => String::new(),
        };
        Ok(LdapConfig {
            url: settings.ldap_url.clone(),
            search_dn: settings.ldap_search_dn.clone(),
            search_password,
            base_dn: settings.ldap_base_dn.clone(),
            filter: settings.ldap_filter.clone(),
            uid: settings.ldap_uid.clone(),
            scope: settings.ldap_scope,
            timeout_secs: settings.ldap_timeout,
            verify_cert: settings.ldap_verify_cert,
            starttls: settings.ldap_starttls,
            ca_certificate: settings.ldap_ca_certificate.clone(),
            group_admin_dn: settings.ldap_group_admin_dn.clone(),
            group_membership_attribute: settings.ldap_group_membership_attribute.clone(),
            group_base_dn: settings.ldap_group_base_dn.clone(),
            group_filter: settings.ldap_group_search_filter.clone(),
            group_name_attribute: settings.ldap_group_attribute_name.clone(),
            group_scope: settings.ldap_group_search_scope,
        })
    }

    /// Checks what can be checked without the server: the URL's scheme, a filter that is one
    /// parenthesized expression, a uid attribute, a scope, a timeout, the CA's PEM.
    pub fn checked(&self) -> Result<(), Invalid> {
        let url = self.url.trim();
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return Err(Invalid(format!("ldap_url {url:?}: use ldap://host[:port] or ldaps://host[:port]")));
        }
        if self.starttls && url.starts_with("ldaps://") {
            return Err(Invalid("ldap_starttls upgrades an ldap:// connection; ldaps:// is TLS already".into()));
        }
        if !self.filter.is_empty() && !balanced(&self.filter) {
            return Err(Invalid(format!(
                "ldap_filter {:?} is not one LDAP filter: write it in parentheses, e.g. (objectClass=person)",
                self.filter
            )));
        }
        if !attribute_name(&self.uid) {
            return Err(Invalid(format!("ldap_uid {:?} is not an attribute name (uid, sAMAccountName)", self.uid)));
        }
        if !(0..=2).contains(&self.scope) {
            return Err(Invalid(format!("ldap_scope {}: 0 (base), 1 (one level) or 2 (subtree)", self.scope)));
        }
        if !(0..=2).contains(&self.group_scope) {
            return Err(Invalid(format!(
                "ldap_group_search_scope {}: 0 (base), 1 (one level) or 2 (subtree)",
                self.group_scope
            )));
        }
        if !self.group_filter.is_empty() && !balanced(&self.group_filter) {
            return Err(Invalid(format!(
                "ldap_group_search_filter {:?} is not one LDAP filter: write it in parentheses, e.g. (objectClass=groupOfNames)",
                self.group_filter
            )));
        }
        if !self.group_name_attribute.is_empty() && !attribute_name(&self.group_name_attribute) {
            return Err(Invalid(format!(
                "ldap_group_attribute_name {:?} is not an attribute name (cn)",
                self.group_name_attribute
            )));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return Err(Invalid(format!("ldap_timeout {}: from 1 to 300 seconds", self.timeout_secs)));
        }
        if !self.ca_certificate.trim().is_empty() {
            roots(&self.ca_certificate).map_err(|e| Invalid(format!("ldap_ca_certificate: {e}")))?;
        }
        Ok(())
    }

    fn scope(&self) -> Scope {
        scope_of(self.scope)
    }

    /// The attribute holding a group's name.
    fn group_name(&self) -> &str {
        if self.group_name_attribute.is_empty() { "cn" } else { &self.group_name_attribute }
    }

    fn fail(&self, what: impl std::fmt::Display) -> LdapError {
        LdapError(format!("LDAP server {}: {what}", self.url))
    }

    /// A connection bound as the search DN (or anonymous).
    async fn connect(&self) -> Result<ldap3::Ldap, LdapError> {
        let timeout = Duration::from_secs(self.timeout_secs.max(1));
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(self.starttls)
            .set_no_tls_verify(!self.verify_cert);
        if self.url.starts_with("ldaps://") || self.starttls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            if self.verify_cert {
                let roots = roots(&self.ca_certificate).map_err(|e| self.fail(format!("its CA certificate: {e}")))?;
                let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
                settings = settings.set_config(Arc::new(config));
            }
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, self.url.trim())
            .await
            .map_err(|e| self.fail(format!("cannot be reached ({e})")))?;
        ldap3::drive!(conn);
        ldap.with_timeout(timeout);
        if !self.search_dn.is_empty() {
            let bound = ldap
                .simple_bind(&self.search_dn, &self.search_password)
                .await
                .map_err(|e| self.fail(format!("binding as {} failed ({e})", self.search_dn)))?;
            if bound.rc != 0 {
                return Err(self.fail(format!("it refuses the search DN {} ({})", self.search_dn, result(&bound))));
            }
        }
        Ok(ldap)
    }

    /// The people whose uid matches `filter` (an LDAP filter on the uid, already escaped).
    async fn people(&self, ldap: &mut ldap3::Ldap, uid_filter: &str, limit: i32) -> Result<Vec<Person>, LdapError> {
        let filter = if self.filter.is_empty() {
            format!("({}={uid_filter})", self.uid)
        } else {
            format!("(&{}({}={uid_filter}))", self.filter, self.uid)
        };
        let membership = if self.group_membership_attribute.is_empty() {
            "memberOf"
        } else {
            self.group_membership_attribute.as_str()
        };
        let attributes = [self.uid.as_str(), "mail", "cn", "displayName", membership];
        let found = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(limit))
            .search(&self.base_dn, self.scope(), &filter, attributes.to_vec())
            .await
            .map_err(|e| self.fail(format!("searching {} failed ({e})", self.base_dn)))?;
        // A size limit reached still returns what was found.
        let (entries, outcome) = (found.0, found.1);
        if outcome.rc != 0 && outcome.rc != 4 {
            return Err(self.fail(format!("searching {} for {filter} answered {}", self.base_dn, result(&outcome))));
        }
        let first = |e: &SearchEntry, name: &str| {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
                .unwrap_or_default()
        };
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .map(|e| Person {
                username: first(&e, &self.uid),
                email: first(&e, "mail"),
                realname: Some(first(&e, "displayName")).filter(|n| !n.is_empty()).unwrap_or_else(|| first(&e, "cn")),
                groups: e
                    .attrs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(membership))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                dn: e.dn,
            })
            .filter(|p| !p.username.is_empty())
            .collect())
    }

    /// Whether `person` belongs to the admin group: by their membership attribute, else by the
    /// group's members (`member`, `uniqueMember`, `memberUid`).
    async fn is_admin(&self, ldap: &mut ldap3::Ldap, person: &Person) -> Result<bool, LdapError> {
        if self.group_admin_dn.is_empty() {
            return Ok(false);
        }
        if person.groups.iter().any(|g| g.eq_ignore_ascii_case(&self.group_admin_dn)) {
            return Ok(true);
        }
        let filter = format!(
            "(|(member={dn})(uniqueMember={dn})(memberUid={uid}))",
            dn = ldap_escape(&person.dn),
            uid = ldap_escape(&person.username)
        );
        let found = ldap
            .search(&self.group_admin_dn, Scope::Base, &filter, vec!["1.1"])
            .await
            .map_err(|e| self.fail(format!("reading the admin group {} failed ({e})", self.group_admin_dn)))?;
        Ok(!found.0.is_empty())
    }

    /// The DNs of the groups `person` belongs to: those their entry lists (the membership
    /// attribute) and, when a group base DN is set, the groups there naming them as a member
    /// (`member`, `uniqueMember`, `memberUid`).
    async fn groups_of(&self, ldap: &mut ldap3::Ldap, person: &Person) -> Result<Vec<String>, LdapError> {
        let mut groups = person.groups.clone();
        if !self.group_base_dn.is_empty() {
            let members = format!(
                "(|(member={dn})(uniqueMember={dn})(memberUid={uid}))",
                dn = ldap_escape(&person.dn),
                uid = ldap_escape(&person.username)
            );
            for group in self.groups(ldap, &members).await? {
                if !groups.iter().any(|g| g.eq_ignore_ascii_case(&group.dn)) {
                    groups.push(group.dn);
                }
            }
        }
        Ok(groups)
    }

    /// The groups under the group base DN matching `filter` (and the group filter).
    async fn groups(&self, ldap: &mut ldap3::Ldap, filter: &str) -> Result<Vec<LdapGroup>, LdapError> {
        let filter =
            if self.group_filter.is_empty() { filter.to_owned() } else { format!("(&{}{filter})", self.group_filter) };
        let name = self.group_name();
        let found = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(SEARCH_LIMIT))
            .search(&self.group_base_dn, scope_of(self.group_scope), &filter, vec![name])
            .await
            .map_err(|e| self.fail(format!("searching groups in {} failed ({e})", self.group_base_dn)))?;
        let (entries, outcome) = (found.0, found.1);
        if outcome.rc != 0 && outcome.rc != 4 {
            return Err(self.fail(format!(
                "searching groups in {} for {filter} answered {}",
                self.group_base_dn,
                result(&outcome)
            )));
        }
        Ok(entries.into_iter().map(|e| LdapGroup::of(SearchEntry::construct(e), name)).collect())
    }

    /// Groups by name (containing `name`; every one when empty) under the group base DN, or the
    /// one group at `dn` (Harbor's `/ldap/groups/search`).
    pub async fn search_groups(&self, name: &str, dn: &str) -> Result<Vec<LdapGroup>, LdapError> {
        let mut ldap = self.connect().await?;
        let found = if !dn.is_empty() {
            self.group_at(&mut ldap, dn).await?.into_iter().collect()
        } else {
            if self.group_base_dn.is_empty() {
                return Err(LdapError("set ldap_group_base_dn to search groups by name".into()));
            }
            let pattern = if name.is_empty() { "*".to_owned() } else { format!("*{}*", ldap_escape(name)) };
            self.groups(&mut ldap, &format!("({}={pattern})", self.group_name())).await?
        };
        let _ = ldap.unbind().await;
        Ok(found)
    }

    /// The group whose entry is `dn`, if the directory has it.
    async fn group_at(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Result<Option<LdapGroup>, LdapError> {
        let filter =
            if self.group_filter.is_empty() { "(objectClass=*)".to_owned() } else { self.group_filter.clone() };
        let name = self.group_name();
        let found = ldap
            .search(dn, Scope::Base, &filter, vec![name])
            .await
            .map_err(|e| self.fail(format!("reading the group {dn} failed ({e})")))?;
        let (entries, outcome) = (found.0, found.1);
        match outcome.rc {
            0 => {}
            // noSuchObject, invalidDNSyntax: not a group of this directory.
            32 | 34 => return Ok(None),
            _ => return Err(self.fail(format!("reading the group {dn} answered {}", result(&outcome)))),
        }
        Ok(entries.into_iter().next().map(|e| LdapGroup::of(SearchEntry::construct(e), name)))
    }

    /// The group at `dn`, if the directory has it (checked before a group is made here).
    pub async fn find_group(&self, dn: &str) -> Result<Option<LdapGroup>, LdapError> {
        let mut ldap = self.connect().await?;
        let found = self.group_at(&mut ldap, dn).await;
        let _ = ldap.unbind().await;
        found
    }

    /// Checks the settings against the server: it is reached, the search DN binds, the base DN
    /// can be searched with the filter.
    pub async fn ping(&self) -> Result<(), LdapError> {
        let mut ldap = self.connect().await?;
        self.people(&mut ldap, "*", 1).await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// The people whose sign-in name contains `name` (every one when empty), at most 100.
    pub async fn search(&self, name: &str) -> Result<Vec<Person>, LdapError> {
        let mut ldap = self.connect().await?;
        let filter = if name.is_empty() { "*".to_owned() } else { format!("*{}*", ldap_escape(name)) };
        let people = self.people(&mut ldap, &filter, SEARCH_LIMIT).await?;
        let _ = ldap.unbind().await;
        Ok(people)
    }

    /// The person `name` with the password `password`, if both are right.
    pub async fn verify(&self, name: &str, password: &str) -> Result<Option<Profile>, LdapError> {
        if password.is_empty() || name.is_empty() {
            return Ok(None);
        }
        let mut ldap = self.connect().await?;
        let mut found = self.people(&mut ldap, &ldap_escape(name), 2).await?;
        if found.len() != 1 {
            if found.len() > 1 {
                tracing::warn!(user = name, "more than one LDAP entry has this name: none signs in");
            }
            return Ok(None);
        }
        let mut person = found.remove(0);
        person.groups = self.groups_of(&mut ldap, &person).await?;
        let admin = self.is_admin(&mut ldap, &person).await?;
        let bound = ldap
            .simple_bind(&person.dn, password)
            .await
            .map_err(|e| self.fail(format!("binding as {} failed ({e})", person.dn)))?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => Ok(Some(Profile {
                username: person.username,
                dn: person.dn,
                email: person.email,
                realname: person.realname,
                admin,
                groups: person.groups,
                oidc: None,
            })),
            // invalidCredentials, and the codes for a locked or disabled account.
            49 | 50 | 53 => Ok(None),
            _ => Err(self.fail(format!("binding as {} answered {}", person.dn, result(&bound)))),
        }
    }
}

/// A group of the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapGroup {
    /// Its entry.
    pub dn: String,
    /// Its name (the group name attribute).
    pub name: String,
}

impl LdapGroup {
    /// The group of a search's entry, named by its attribute `name`.
    fn of(entry: SearchEntry, name: &str) -> LdapGroup {
        let value =
            entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first().cloned());
        LdapGroup { name: value.unwrap_or_default(), dn: entry.dn }
    }
}

/// The ldap3 scope of Harbor's number.
fn scope_of(scope: i64) -> Scope {
    match scope {
        0 => Scope::Base,
        1 => Scope::OneLevel,
        _ => Scope::Subtree,
    }
}

/// Whether `name` can be an attribute's name.
fn attribute_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';')
}

/// An LDAP result as a person reads it: its code, its name where it is a common one, its text.
fn result(r: &ldap3::LdapResult) -> String {
    let name = match r.rc {
        32 => " noSuchObject",
        34 => " invalidDNSyntax",
        48 => " inappropriateAuthentication",
        49 => " invalidCredentials",
        50 => " insufficientAccessRights",
        53 => " unwillingToPerform",
        _ => "",
    };
    let text = if r.text.is_empty() { String::new() } else { format!(": {}", r.text) };
    format!("result {}{name}{text}", r.rc)
}

/// Whether `filter` is one parenthesized expression with balanced parentheses.
fn balanced(filter: &str) -> bool {
    let filter = filter.trim();
    if !(filter.starts_with('(') && filter.ends_with(')')) {
        return false;
    }
    let mut depth = 0i32;
    for (i, c) in filter.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if depth < 0 || (depth == 0 && i + 1 != filter.len()) {
            return false;
        }
    }
    depth == 0
}

/// The system's roots and the certificates of `pem`.
fn roots(pem: &str) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in system_roots() {
        let _ = roots.add(cert);
    }
    if !pem.trim().is_empty() {
        let mut added = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("not PEM certificates ({e})"))?;
            roots.add(cert).map_err(|e| format!("not a usable CA certificate ({e})"))?;
            added += 1;
        }
        if added == 0 {
            return Err("no certificate in it".into());
        }
    }
    Ok(roots)
}

/// The system's trusted roots (Debian's and Red Hat's bundles; none where neither exists).
fn system_roots() -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .map(|text| rustls_pki_types::CertificateDer::pem_slice_iter(&text).flatten().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_for_their_parentheses() {
        assert!(balanced("(objectClass=person)"));
        assert!(balanced("(&(objectClass=person)(!(employeeType=disabled)))"));
        assert!(!balanced("objectClass=person"));
        assert!(!balanced("(a=b)(c=d)"));
        assert!(!balanced("((a=b)"));
    }

    #[test]
    fn configurations_say_what_is_wrong() {
        let ok = LdapConfig {
            url: "ldap://127.0.0.1:3890".into(),
            uid: "uid".into(),
            scope: 2,
            timeout_secs: 5,
            ..LdapConfig::default()
        };
        assert!(ok.checked().is_ok());
        let bad = |c: LdapConfig| c.checked().expect_err("refused").0;
        assert!(bad(LdapConfig { url: "http://x".into(), ..ok.clone() }).contains("ldap_url"));
        assert!(bad(LdapConfig { filter: "objectClass=person".into(), ..ok.clone() }).contains("ldap_filter"));
        assert!(bad(LdapConfig { uid: "u id".into(), ..ok.clone() }).contains("ldap_uid"));
        assert!(bad(LdapConfig { scope: 3, ..ok.clone() }).contains("ldap_scope"));
        assert!(bad(LdapConfig { ca_certificate: "nope".into(), ..ok.clone() }).contains("ldap_ca_certificate"));
        assert!(bad(LdapConfig { starttls: true, url: "ldaps://x".into(), ..ok }).contains("starttls"));
    }
}
