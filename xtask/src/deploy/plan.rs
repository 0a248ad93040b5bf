//! A deploy plan: what would change, resource by resource and field by
//! field, as `+` create, `~` update, `-` delete. Secrets appear as
//! `(secret)` / `(changed)`: only their digests are ever compared, and no
//! value reaches the plan.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// What one field of a resource holds, as far as the plan may show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Plain(String),
    /// A secret, by its digest (see `secrets::digest`); `None` when the
    /// live side keeps no digest to compare with.
    Secret(Option<String>),
    /// Known only once an earlier step has run (an Access audience tag).
    Pending,
}

impl Field {
    pub fn plain(value: impl Into<String>) -> Field {
        Field::Plain(value.into())
    }
}

/// A resource's comparable fields, by name (`vars.ENVIRONMENT`, `content`).
pub type Fields = BTreeMap<String, Field>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn sign(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub field: String,
    /// As shown: secrets never appear, only `(secret)`.
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The kind of resource (`worker`, `dns`, `pages-project`, ...).
    pub kind: &'static str,
    /// Its name (script, hostname, project, ...).
    pub name: String,
    pub action: Action,
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn has_deletes(&self) -> bool {
        self.changes.iter().any(|c| c.action == Action::Delete)
    }

    pub fn change(&self, kind: &str, name: &str) -> Option<&Change> {
        self.changes
            .iter()
            .find(|c| c.kind == kind && c.name == name)
    }

    /// Adds the change from `before` (live; `None`: absent) to `after`
    /// (desired; `None`: to be deleted), if there is one.
    pub fn compare(
        &mut self,
        kind: &'static str,
        name: &str,
        before: Option<&Fields>,
        after: Option<&Fields>,
    ) {
        let action = match (before, after) {
            (None, None) => return,
            (None, Some(_)) => Action::Create,
            (Some(_), None) => Action::Delete,
            (Some(_), Some(_)) => Action::Update,
        };
        let empty = Fields::new();
        let before = before.unwrap_or(&empty);
        let after = after.unwrap_or(&empty);
        let mut fields = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            before.keys().chain(after.keys()).collect();
        for field in names {
            let (b, a) = (before.get(field), after.get(field));
            if !differs(b, a) {
                continue;
            }
            fields.push(FieldChange {
                field: field.clone(),
                before: b.map(|f| show(f, None)),
                after: a.map(|f| show(f, b)),
            });
        }
        if action == Action::Update && fields.is_empty() {
            return;
        }
        self.changes.push(Change {
            kind,
            name: name.to_owned(),
            action,
            fields,
        });
    }

    /// The plan as people read it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.changes.is_empty() {
            out.push_str("  no changes: the environment is as described\n");
            return out;
        }
        for change in &self.changes {
            let _ = writeln!(
                out,
                "  {} {} {}",
                change.action.sign(),
                change.kind,
                change.name
            );
            for field in &change.fields {
                let line = match (&field.before, &field.after) {
                    (None, Some(after)) => format!("+ {} = {after}", field.field),
                    (Some(before), None) => format!("- {} = {before}", field.field),
                    (Some(before), Some(after)) => {
                        format!("~ {}: {before} -> {after}", field.field)
                    }
                    (None, None) => continue,
                };
                let _ = writeln!(out, "      {line}");
            }
        }
        let count = |action| self.changes.iter().filter(|c| c.action == action).count();
        let _ = writeln!(
            out,
            "  {} to create, {} to update, {} to delete",
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete)
        );
        out
    }
}

fn differs(before: Option<&Field>, after: Option<&Field>) -> bool {
    match (before, after) {
        // Nothing to compare a secret with (no digest kept): it is set
        // again, and shown as changed.
        (Some(Field::Secret(b)), Some(Field::Secret(a))) => b.is_none() || b != a,
        (_, Some(Field::Pending)) => true,
        (b, a) => b != a,
    }
}

fn show(field: &Field, before: Option<&Field>) -> String {
    match field {
        Field::Plain(text) => format!("{text:?}"),
        Field::Secret(_) if before.is_some() => "(changed)".into(),
        Field::Secret(_) => "(secret)".into(),
        Field::Pending => "(known after apply)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, Field)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn equal_resources_make_no_change_and_differences_are_per_field() {
        let live = fields(&[
            ("vars.A", Field::plain("1")),
            ("vars.B", Field::plain("2")),
            ("secrets.S", Field::Secret(Some("d1".into()))),
        ]);
        let mut plan = Plan::default();
        plan.compare("worker", "w", Some(&live), Some(&live.clone()));
        assert!(plan.is_empty());

        let desired = fields(&[
            ("vars.A", Field::plain("1")),
            ("vars.C", Field::plain("3")),
            ("secrets.S", Field::Secret(Some("d2".into()))),
        ]);
        plan.compare("worker", "w", Some(&live), Some(&desired));
        let change = &plan.changes[0];
        assert_eq!(change.action, Action::Update);
        let shown: Vec<(&str, Option<&str>, Option<&str>)> = change
            .fields
            .iter()
            .map(|f| (f.field.as_str(), f.before.as_deref(), f.after.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("secrets.S", Some("(secret)"), Some("(changed)")),
                ("vars.B", Some("\"2\""), None),
                ("vars.C", None, Some("\"3\"")),
            ]
        );
        let text = plan.render();
        assert!(text.contains("~ worker w"), "{text}");
        assert!(
            text.contains("~ secrets.S: (secret) -> (changed)"),
            "{text}"
        );
        assert!(
            !text.contains("d1") && !text.contains("d2"),
            "digests stay out: {text}"
        );
    }

    #[test]
    fn creates_deletes_and_pending_values() {
        let desired = fields(&[("aud", Field::Pending), ("name", Field::plain("x"))]);
        let mut plan = Plan::default();
        plan.compare("access-app", "a", None, Some(&desired));
        plan.compare("dns", "old.example.com", Some(&desired), None);
        assert_eq!(plan.changes[0].action, Action::Create);
        assert_eq!(plan.changes[1].action, Action::Delete);
        assert!(plan.has_deletes());
        let text = plan.render();
        assert!(text.contains("+ aud = (known after apply)"), "{text}");
        assert!(
            text.contains("1 to create, 0 to update, 1 to delete"),
            "{text}"
        );
    }

    #[test]
    fn a_secret_without_a_kept_digest_is_set_again() {
        let live = fields(&[("secrets.S", Field::Secret(None))]);
        let desired = fields(&[("secrets.S", Field::Secret(Some("d".into())))]);
        let mut plan = Plan::default();
        plan.compare("worker", "w", Some(&live), Some(&desired));
        assert_eq!(plan.changes.len(), 1);
    }
}
