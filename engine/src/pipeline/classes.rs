//! The 1000 ImageNet-1k class names of the class-conditional models, searchable by name.

use crate::error::{Error, Result};

/// One line per class id, synonyms separated by ", " (`assets/imagenet_classes.txt`).
const CLASSES: &str = include_str!("../../../assets/imagenet_classes.txt");

/// The number of classes of the released models (the null class is this id).
pub const NUM_CLASSES: i64 = 1000;

/// The class names: entry i holds class i's synonyms, lower case.
pub fn class_table() -> Vec<Vec<String>> {
    CLASSES
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(", ").map(|s| s.trim().to_lowercase()).collect())
        .collect()
}

/// The first (display) name of class `id`.
pub fn class_name(id: i64) -> Option<String> {
    let t = class_table();
    usize::try_from(id)
        .ok()
        .and_then(|i| t.get(i))
        .and_then(|s| s.first().cloned())
}

/// A class id or a name: exact synonym match first, then a unique substring match.
pub fn resolve_class(arg: &str, table: &[Vec<String>]) -> Result<i64> {
    if let Ok(id) = arg.trim().parse::<i64>() {
        if !(0..NUM_CLASSES).contains(&id) {
            return Err(Error::Input(format!(
                "class id {id} is out of range 0..={}",
                NUM_CLASSES - 1
            )));
        }
        return Ok(id);
    }
    let q = arg.trim().to_lowercase().replace('_', " ");
    if let Some(i) = table.iter().position(|syn| syn.contains(&q)) {
        return Ok(i as i64);
    }
    let hits: Vec<usize> = (0..table.len())
        .filter(|&i| table[i].iter().any(|s| s.contains(&q)))
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one as i64),
        [] => Err(Error::Input(format!(
            "no ImageNet class matches `{arg}`; give an id 0-999 or another name"
        ))),
        many => {
            let list: Vec<String> = many
                .iter()
                .take(8)
                .map(|&i| format!("{i} ({})", table[i][0]))
                .collect();
            Err(Error::Input(format!(
                "`{arg}` matches {} classes: {}{}; be more specific or give the id",
                many.len(),
                list.join(", "),
                if many.len() > 8 { ", ..." } else { "" }
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table_has_1000_lines() {
        assert_eq!(class_table().len(), 1000);
    }

    #[test]
    fn class_lookup() {
        let t = class_table();
        assert_eq!(resolve_class("207", &t).unwrap(), 207);
        assert!(resolve_class("1000", &t).is_err());
        assert!(resolve_class("-1", &t).is_err());
        assert!(resolve_class("zzzz-not-a-class", &t).is_err());
        assert_eq!(class_name(207).as_deref(), Some("golden retriever"));
    }
}
