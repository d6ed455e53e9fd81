use serde::Serialize;

use crate::{Definitions, ObjectKind};

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
                }),
                Some((_, _, old)) if old == spec => plan.unchanged += 1,
                Some((_, _, old)) => plan.changes.push(Change {
                    action: Action::Update,
                    kind: *kind,
                    name: name.clone(),
                    fields: changed_fields(old, spec),
                }),
            }
        }
        for (kind, name, _) in &cur {
            if !new.iter().any(|(k, n, _)| k == kind && n == name) {
                plan.changes.push(Change {
                    action: Action::Delete,
                    kind: *kind,
                    name: name.clone(),
                    fields: vec![],
                });
            }
        }
        plan
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
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
            if !c.fields.is_empty() {
                out.push_str(&format!(" ({})", c.fields.join(", ")));
            }
            out.push('\n');
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
    }
}
