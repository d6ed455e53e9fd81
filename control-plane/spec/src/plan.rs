use serde::Serialize;

use crate::diff::render_changes;
use crate::{Compatibility, Definitions, FieldChange, ObjectKind, diff_specs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One object the apply would change, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: ObjectKind,
    pub name: String,
    /// For updates: the top-level fields that differ.
    pub fields: Vec<String>,
    /// Whether the change can break consumers: creates never do, deletes always do.
    pub compatibility: Compatibility,
    /// For updates: each difference and its class (see [`diff_specs`]).
    pub diff: Vec<FieldChange>,
}

/// What applying a set of definitions over the current ones would do. Declarative: objects
/// absent from the new set are removed, as with `terraform apply` and `feast apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub unchanged: usize,
}

impl Plan {
    pub fn between(current: &Definitions, desired: &Definitions) -> Self {
        let cur = current.objects();
        let new = desired.objects();
        let mut plan = Plan::default();
        for (kind, name, spec) in &new {
            match cur.iter().find(|(k, n, _)| k == kind && n == name) {
                None => plan.changes.push(Change {
                    action: Action::Create,
                    kind: *kind,
                    name: name.clone(),
                    fields: vec![],
                    compatibility: Compatibility::Compatible,
                    diff: vec![],
                }),
                Some((_, _, old)) if old == spec => plan.unchanged += 1,
                Some((_, _, old)) => {
                    let diff = diff_specs(*kind, Some(old), Some(spec));
                    plan.changes.push(Change {
                        action: Action::Update,
                        kind: *kind,
                        name: name.clone(),
                        fields: changed_fields(old, spec),
                        compatibility: diff.compatibility,
                        diff: diff.changes,
                    });
                }
            }
        }
        for (kind, name, _) in &cur {
            if !new.iter().any(|(k, n, _)| k == kind && n == name) {
                plan.changes.push(Change {
                    action: Action::Delete,
                    kind: *kind,
                    name: name.clone(),
                    fields: vec![],
                    compatibility: Compatibility::Breaking,
                    diff: vec![],
                });
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether any change can break consumers (a delete, or an update classed breaking).
    pub fn is_breaking(&self) -> bool {
        self.changes
            .iter()
            .any(|c| c.compatibility == Compatibility::Breaking)
    }

    /// Human-readable plan, one line per change, like `terraform plan`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            let (sign, verb) = match c.action {
                Action::Create => ('+', "create"),
                Action::Update => ('~', "update"),
                Action::Delete => ('-', "delete"),
            };
            out.push_str(&format!("  {sign} {verb} {} `{}`", c.kind, c.name));
            // The diff lines below say more than the field names; these remain for updates
            // the diff finds nothing in (features merely reordered).
            if c.diff.is_empty() && !c.fields.is_empty() {
                out.push_str(&format!(" ({})", c.fields.join(", ")));
            }
            if c.compatibility == Compatibility::Breaking {
                out.push_str(" (breaking)");
            }
            out.push('\n');
            if c.action == Action::Update {
                for line in render_changes(&c.diff).lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
        let count = |a| self.changes.iter().filter(|c| c.action == a).count();
        out.push_str(&format!(
            "Plan: {} to create, {} to update, {} to delete, {} unchanged.\n",
            count(Action::Create),
            count(Action::Update),
            count(Action::Delete),
            self.unchanged
        ));
        out
    }
}

fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| o.get(*k) != n.get(*k))
                .cloned()
                .collect()
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entity;
    use fstore_snapshot::{Field, KeyType};

    fn entity(name: &str, desc: &str) -> Entity {
        Entity {
            name: name.into(),
            join_keys: vec![Field {
                name: "id".into(),
                ty: KeyType::Int64,
            }],
            description: desc.into(),
            owner: String::new(),
            tags: vec![],
        }
    }

    #[test]
    fn creates_updates_deletes() {
        let cur = Definitions {
            entities: vec![entity("a", ""), entity("b", "")],
            ..Default::default()
        };
        let new = Definitions {
            entities: vec![entity("a", "changed"), entity("c", "")],
            ..Default::default()
        };
        let p = Plan::between(&cur, &new);
        let actions: Vec<_> = p
            .changes
            .iter()
            .map(|c| (c.action, c.name.as_str()))
            .collect();
        assert_eq!(
            actions,
            vec![
                (Action::Update, "a"),
                (Action::Create, "c"),
                (Action::Delete, "b")
            ]
        );
        assert_eq!(p.changes[0].fields, vec!["description".to_string()]);
        assert!(Plan::between(&new, &new).is_empty());
        assert!(p.render().contains("1 to create, 1 to update, 1 to delete"));
        assert_eq!(p.changes[0].compatibility, Compatibility::Compatible);
        assert_eq!(p.changes[0].diff.len(), 1);
        assert_eq!(p.changes[1].compatibility, Compatibility::Compatible);
        assert_eq!(p.changes[2].compatibility, Compatibility::Breaking);
        // The delete alone makes it breaking.
        assert!(p.is_breaking());
    }

    #[test]
    fn marks_breaking_updates_with_their_diff() {
        let cur = Definitions {
            entities: vec![entity("a", "")],
            ..Default::default()
        };
        let mut changed = entity("a", "buyers");
        changed.join_keys[0].ty = KeyType::String;
        let new = Definitions {
            entities: vec![changed],
            ..Default::default()
        };
        let p = Plan::between(&cur, &new);
        assert!(p.is_breaking());
        assert_eq!(
            p.render(),
            "  ~ update entity `a` (breaking)\n      ~ description: changed\n      ! join_keys: join keys changed: rows are keyed differently (breaking)\nPlan: 0 to create, 1 to update, 0 to delete, 0 unchanged.\n"
        );
        let compatible = Plan::between(
            &cur,
            &Definitions {
                entities: vec![entity("a", "buyers")],
                ..Default::default()
            },
        );
        assert!(!compatible.is_breaking());
        assert!(
            compatible
                .render()
                .starts_with("  ~ update entity `a`\n      ~ description: changed\n")
        );
    }
}
