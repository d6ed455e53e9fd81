//! Splitting a lookup request by shard and merging the edges' answers, with no HTTP in it.
//! Both request formats the edges serve are handled: fstore's own (`/v1/features`, row-major
//! results) and the Feast feature server's (`/get-online-features`, column-major).

use fstore_snapshot::KeyBuf;
use serde_json::Value;

/// Which wire format a request is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fstore,
    Feast,
}

/// How a request is to be routed.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// No sharding key in it (or not one the router can read): any edge answers it whole,
    /// and reports any mistake in it.
    Anywhere,
    /// The index hash of each entity row's key, in row order.
    Rows(Vec<u64>),
}

/// Works out how to route `body`: by the hash of each row's `key` columns (join keys in the
/// order of the view's entities, encoded as the edge encodes them), when `entities` holds all
/// of them as arrays of one length with integer or string values.
pub fn plan(body: &Value, key: &[String]) -> Plan {
    let Some(entities) = body.get("entities").and_then(Value::as_object) else {
        return Plan::Anywhere;
    };
    let mut columns = Vec::with_capacity(key.len());
    for k in key {
        match entities.get(k).and_then(Value::as_array) {
            Some(c) => columns.push(c),
            None => return Plan::Anywhere,
        }
    }
    let Some(n) = columns.first().map(|c| c.len()) else {
        return Plan::Anywhere;
    };
    if columns.iter().any(|c| c.len() != n) {
        return Plan::Anywhere;
    }
    let mut kb = KeyBuf::new();
    let mut hashes = Vec::with_capacity(n);
    for r in 0..n {
        kb.clear();
        for c in &columns {
            match &c[r] {
                Value::Number(x) => match x.as_i64() {
                    Some(i) => kb.push_i64(i),
                    None => return Plan::Anywhere,
                },
                Value::String(s) => kb.push_str(s),
                _ => return Plan::Anywhere,
            }
        }
        hashes.push(fstore_snapshot::format::key_hash(kb.as_bytes()));
    }
    Plan::Rows(hashes)
}

/// `body` with only the entity rows `rows` (indices into the original, in order): every
/// column of `entities` holding one value per row is cut, and so is every array of
/// `request_context` of that length; scalars stay.
pub fn sub_request(body: &Value, rows: &[usize], n: usize) -> Value {
    let mut out = body.clone();
    let pick = |v: &mut Value| {
        if let Value::Array(a) = v
            && a.len() == n
        {
            *a = rows.iter().map(|&r| a[r].take()).collect();
        }
    };
    for section in ["entities", "request_context"] {
        if let Some(obj) = out.get_mut(section).and_then(Value::as_object_mut) {
            obj.values_mut().for_each(pick);
        }
    }
    out
}

/// Why answers could not be merged: an edge answered something that is not a lookup answer.
#[derive(Debug, thiserror::Error)]
#[error("an edge's answer cannot be merged: {0}")]
pub struct MergeError(pub String);

/// Puts the answers of the sub-requests back together, as if one edge had answered the
/// whole request: `parts` holds each sub-request's rows (indices into the original) and its
/// parsed answer; `n` is the original row count.
pub fn merge(
    format: Format,
    n: usize,
    parts: Vec<(Vec<usize>, Value)>,
) -> Result<Value, MergeError> {
    match format {
        Format::Fstore => merge_fstore(n, parts),
        Format::Feast => merge_feast(n, parts),
    }
}

fn merge_fstore(n: usize, parts: Vec<(Vec<usize>, Value)>) -> Result<Value, MergeError> {
    let mut results = vec![Value::Null; n];
    let mut errors = Vec::new();
    let mut out: Option<Value> = None;
    for (rows, mut answer) in parts {
        let got = take_array(&mut answer, "results")?;
        if got.len() != rows.len() {
            return Err(MergeError(format!(
                "{} results for {} entities",
                got.len(),
                rows.len()
            )));
        }
        for (r, row) in rows.iter().zip(got) {
            results[*r] = row;
        }
        if let Some(Value::Array(es)) = answer.get_mut("errors").map(Value::take) {
            for mut e in es {
                // `entity` counts rows of the sub-request; callers count their own.
                let local = e.get("entity").and_then(Value::as_u64).unwrap_or(0) as usize;
                if let Some(&r) = rows.get(local) {
                    e["entity"] = r.into();
                }
                errors.push(e);
            }
        }
        match &mut out {
            None => out = Some(answer),
            Some(o) => oldest(o, &answer),
        }
    }
    let mut out = out.ok_or_else(|| MergeError("no answers".into()))?;
    out["results"] = Value::Array(results);
    if let Some(o) = out.as_object_mut() {
        o.remove("errors");
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.get("entity").and_then(Value::as_u64).unwrap_or(0));
            o.insert("errors".into(), Value::Array(errors));
        }
    }
    Ok(out)
}

/// Moves the array `field` out of `v`.
fn take_array(v: &mut Value, field: &str) -> Result<Vec<Value>, MergeError> {
    v.get_mut(field)
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .ok_or_else(|| MergeError(format!("no `{field}` array")))
}

/// Keeps in `into` the older manifest and view versions of the two answers: edges may be a
/// poll apart while a new version rolls out, and the merged answer claims no more than every
/// part of it had.
fn oldest(into: &mut Value, other: &Value) {
    if let (Some(a), Some(b)) = (
        into.get("manifest").and_then(Value::as_u64),
        other.get("manifest").and_then(Value::as_u64),
    ) && b < a
    {
        into["manifest"] = b.into();
    }
    let (Some(mine), Some(theirs)) = (
        into.get_mut("views").and_then(Value::as_object_mut),
        other.get("views").and_then(Value::as_object),
    ) else {
        return;
    };
    for (view, v) in theirs {
        let older = match (mine.get(view).and_then(Value::as_u64), v.as_u64()) {
            (Some(a), Some(b)) => b < a,
            (None, _) => true,
            _ => false,
        };
        if older {
            mine.insert(view.clone(), v.clone());
        }
    }
}

fn merge_feast(n: usize, parts: Vec<(Vec<usize>, Value)>) -> Result<Value, MergeError> {
    let mut out: Option<Value> = None;
    // Per output column, per field (values, statuses, event_timestamps), the merged cells.
    let mut columns: Vec<[Vec<Value>; 3]> = Vec::new();
    const FIELDS: [&str; 3] = ["values", "statuses", "event_timestamps"];
    for (rows, mut answer) in parts {
        let got = take_array(&mut answer, "results")?;
        if columns.is_empty() {
            columns = (0..got.len())
                .map(|_| std::array::from_fn(|_| vec![Value::Null; n]))
                .collect();
        }
        if got.len() != columns.len() {
            return Err(MergeError(format!(
                "{} columns, another part had {}",
                got.len(),
                columns.len()
            )));
        }
        for (mut col, merged) in got.into_iter().zip(&mut columns) {
            for (field, cells) in FIELDS.iter().zip(merged.iter_mut()) {
                let part = take_array(&mut col, field)?;
                if part.len() != rows.len() {
                    return Err(MergeError(format!(
                        "{} {field} for {} entities",
                        part.len(),
                        rows.len()
                    )));
                }
                for (r, cell) in rows.iter().zip(part) {
                    cells[*r] = cell;
                }
            }
        }
        if out.is_none() {
            out = Some(answer);
        }
    }
    let mut out = out.ok_or_else(|| MergeError("no answers".into()))?;
    out["results"] = Value::Array(
        columns
            .into_iter()
            .map(|fields| {
                let mut col = serde_json::Map::new();
                for (field, cells) in FIELDS.iter().zip(fields) {
                    col.insert((*field).to_string(), Value::Array(cells));
                }
                Value::Object(col)
            })
            .collect(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Vec<String> {
        vec!["customer_id".to_string()]
    }

    #[test]
    fn plans_hash_rows_as_the_edge_encodes_keys() {
        let body = json!({"entities": {"customer_id": [1001, 1002]}, "feature_service": "s"});
        let Plan::Rows(h) = plan(&body, &key()) else {
            panic!("not planned by rows")
        };
        let mut kb = KeyBuf::new();
        kb.push_i64(1002);
        assert_eq!(h[1], fstore_snapshot::format::key_hash(kb.as_bytes()));
        let strings = json!({"entities": {"customer_id": ["a"]}});
        let Plan::Rows(h) = plan(&strings, &key()) else {
            panic!("not planned by rows")
        };
        kb.clear();
        kb.push_str("a");
        assert_eq!(h[0], fstore_snapshot::format::key_hash(kb.as_bytes()));
        // Anything the router cannot read goes whole to an edge, which names the mistake.
        for body in [
            json!({}),
            json!({"entities": []}),
            json!({"entities": {"other": [1]}}),
            json!({"entities": {"customer_id": 5}}),
            json!({"entities": {"customer_id": [1.5]}}),
            json!({"entities": {"customer_id": [null]}}),
        ] {
            assert_eq!(plan(&body, &key()), Plan::Anywhere, "{body}");
        }
        let two = vec!["a".to_string(), "b".to_string()];
        let uneven = json!({"entities": {"a": [1, 2], "b": [1]}});
        assert_eq!(plan(&uneven, &two), Plan::Anywhere);
    }

    #[test]
    fn sub_requests_cut_row_columns_and_keep_scalars() {
        let body = json!({
            "entities": {"customer_id": [1, 2, 3], "basket": [10, 20, 30]},
            "request_context": {"channel": "web", "amount": [1.0, 2.0, 3.0]},
            "features": ["v:f"]
        });
        let sub = sub_request(&body, &[2, 0], 3);
        assert_eq!(sub["entities"]["customer_id"], json!([3, 1]));
        assert_eq!(sub["entities"]["basket"], json!([30, 10]));
        assert_eq!(sub["request_context"]["channel"], json!("web"));
        assert_eq!(sub["request_context"]["amount"], json!([3.0, 1.0]));
        assert_eq!(sub["features"], json!(["v:f"]));
    }

    #[test]
    fn fstore_answers_merge_back_in_request_order() {
        let a = json!({"manifest": 7, "views": {"v": 12}, "features": ["v:f"],
            "results": [{"entity": {"id": 3}}, {"entity": {"id": 1}}],
            "errors": [{"view": "o", "entity": 1, "code": "x", "message": "m"}]});
        let b = json!({"manifest": 6, "views": {"v": 11}, "features": ["v:f"],
            "results": [{"entity": {"id": 2}}]});
        let m = merge(Format::Fstore, 3, vec![(vec![2, 0], a), (vec![1], b)]).expect("merge");
        let ids: Vec<i64> = m["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["entity"]["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(m["manifest"], 6);
        assert_eq!(m["views"]["v"], 11);
        // The error was about the sub-request's second row: the original's first.
        assert_eq!(m["errors"][0]["entity"], 0);
        let short = json!({"results": []});
        assert!(merge(Format::Fstore, 1, vec![(vec![0], short)]).is_err());
    }

    #[test]
    fn feast_answers_merge_column_by_column() {
        let col = |vals: serde_json::Value| json!({"values": vals.clone(), "statuses": vals.clone(), "event_timestamps": vals});
        let a = json!({"metadata": {"feature_names": ["id", "f"]},
            "results": [col(json!([3, 1])), col(json!(["c", "a"]))]});
        let b = json!({"metadata": {"feature_names": ["id", "f"]},
            "results": [col(json!([2])), col(json!(["b"]))]});
        let m = merge(Format::Feast, 3, vec![(vec![2, 0], a), (vec![1], b)]).expect("merge");
        assert_eq!(m["results"][0]["values"], json!([1, 2, 3]));
        assert_eq!(m["results"][1]["statuses"], json!(["a", "b", "c"]));
        assert_eq!(m["metadata"]["feature_names"], json!(["id", "f"]));
        let narrow = json!({"results": [col(json!([2]))]});
        let wide = json!({"results": [col(json!([1])), col(json!([1]))]});
        assert!(merge(Format::Feast, 2, vec![(vec![0], narrow), (vec![1], wide)]).is_err());
    }
}
