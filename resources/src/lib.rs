//! Resources as Keel computes with them: an agent's capacity, an offer, a task's needs.
//!
//! [`Resources`] is a normalised view of a list of `keel.v1.Resource` messages: one entry per
//! (name, role), scalars in fixed-point thousandths (Mesos's precision, so sums never drift),
//! port ranges merged, sets deduplicated. The master's allocator, the agents and the schedulers
//! all use it, so an offer checked by a scheduler is checked the same way by the master.
//!
//! ```
//! use resources::Resources;
//!
//! let agent: Resources = "cpus:4;mem:8192;ports:[31000-32000]".parse().unwrap();
//! let task: Resources = "cpus:1.5;mem:512;ports:[31000-31000]".parse().unwrap();
//! assert!(agent.contains(&task));
//! let left = agent.checked_sub(&task).unwrap();
//! assert_eq!(left.scalar("cpus"), 2.5);
//! assert_eq!(left.to_string(), "cpus:2.5;mem:7680;ports:[31001-32000]");
//! assert!(left.checked_sub(&"cpus:3".parse().unwrap()).is_none());
//! ```
//!
//! Modules: [`ranges`] (merged inclusive ranges of ports), [`parse`] (the `--resources` text
//! format).

#![warn(missing_docs)]

mod entries;
mod json;
mod label;
pub mod parse;
pub mod ranges;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use protos::v1::value::{Range, Ranges as ProtoRanges, Scalar, Set, Type};
use protos::v1::Resource;

use entries::Entries;
use label::Label;

pub use ranges::RangeSet;

/// Fixed-point scale of scalars: Mesos keeps three decimal places.
pub const SCALAR_SCALE: i64 = 1000;
/// The role of unreserved resources.
pub const UNRESERVED_ROLE: &str = "*";

/// Why a resource list is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    /// A resource has no name.
    #[error("resource with an empty name")]
    EmptyName,
    /// A scalar is negative, infinite or NaN.
    #[error("resource {name}: scalar {value} is not a finite non-negative number")]
    BadScalar {
        /// The resource's name.
        name: String,
        /// The value given.
        value: f64,
    },
    /// A range ends before it begins.
    #[error("resource {name}: range [{begin}-{end}] ends before it begins")]
    BadRange {
        /// The resource's name.
        name: String,
        /// Start of the range.
        begin: u64,
        /// End of the range.
        end: u64,
    },
    /// The type says one thing and the value field another.
    #[error("resource {name}: type {kind} has no matching value")]
    MissingValue {
        /// The resource's name.
        name: String,
        /// The declared type.
        kind: String,
    },
    /// The same (name, role) appears with two types.
    #[error("resource {0} appears with different types")]
    TypeClash(String),
    /// The entries of one name and role add up past the largest amount.
    #[error("resource {0}: the amounts given add up past the largest amount")]
    TooLarge(String),
    /// The text form could not be parsed.
    #[error("cannot parse resources {text:?}: {why}")]
    Parse {
        /// The text.
        text: String,
        /// What was wrong.
        why: String,
    },
}

/// The amount of one named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Amount {
    /// A quantity, in thousandths.
    Scalar(i64),
    /// Ranges of integers (ports).
    Ranges(RangeSet),
    /// Named items.
    Set(BTreeSet<String>),
}

impl Amount {
    fn is_empty(&self) -> bool {
        match self {
            Amount::Scalar(v) => *v == 0,
            Amount::Ranges(r) => r.is_empty(),
            Amount::Set(s) => s.is_empty(),
        }
    }

    fn same_kind(&self, other: &Amount) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Adds `other`, of the same kind (checked by the caller), in place.
    fn add_same_kind(&mut self, other: &Amount) {
        match (self, other) {
            // Sums of what agents hold cannot reach this; saturating keeps a bad one bounded.
            (Amount::Scalar(a), Amount::Scalar(b)) => *a = a.saturating_add(*b),
            (Amount::Ranges(a), Amount::Ranges(b)) => a.add(b),
            (Amount::Set(a), Amount::Set(b)) => a.extend(b.iter().cloned()),
            _ => debug_assert!(false, "kinds checked by the caller"),
        }
    }
}

/// A normalised collection of resources, keyed by (name, role).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    entries: Entries,
}

impl Resources {
    /// No resources.
    pub fn new() -> Resources {
        Resources::default()
    }

    /// Validates and normalises a list of `keel.v1.Resource`.
    pub fn from_proto(list: &[Resource]) -> Result<Resources, ResourceError> {
        let mut out = Resources::new();
        for r in list {
            if r.name.is_empty() {
                return Err(ResourceError::EmptyName);
            }
            let missing = || ResourceError::MissingValue {
                name: r.name.clone(),
                kind: Type::try_from(r.r#type)
                    .map(|t| t.as_str_name().to_owned())
                    .unwrap_or_else(|_| r.r#type.to_string()),
            };
            let amount = match Type::try_from(r.r#type) {
                Ok(Type::Scalar) => {
                    let value = r.scalar.as_ref().ok_or_else(missing)?.value;
                    Amount::Scalar(to_fixed(&r.name, value)?)
                }
                Ok(Type::Ranges) => {
                    let mut set = RangeSet::new();
                    for range in &r.ranges.as_ref().ok_or_else(missing)?.range {
                        if range.end < range.begin {
                            return Err(ResourceError::BadRange {
                                name: r.name.clone(),
                                begin: range.begin,
                                end: range.end,
                            });
                        }
                        set.insert(range.begin, range.end);
                    }
                    Amount::Ranges(set)
                }
                Ok(Type::Set) => Amount::Set(
                    r.set
                        .as_ref()
                        .ok_or_else(missing)?
                        .item
                        .iter()
                        .cloned()
                        .collect(),
                ),
                _ => return Err(missing()),
            };
            out.add_amount(Label::new(&r.name), role_of(r), amount)?;
        }
        out.entries.shrink_to_fit();
        Ok(out)
    }

    /// The resources as a list of `keel.v1.Resource`, in a stable order.
    pub fn to_proto(&self) -> Vec<Resource> {
        self.entries
            .iter()
            .map(|((name, role), amount)| {
                let mut r = Resource {
                    name: name.to_string(),
                    role: role.to_string(),
                    ..Default::default()
                };
                match amount {
                    Amount::Scalar(v) => {
                        r.r#type = Type::Scalar as i32;
                        r.scalar = Some(Scalar {
                            value: *v as f64 / SCALAR_SCALE as f64,
                        });
                    }
                    Amount::Ranges(set) => {
                        r.r#type = Type::Ranges as i32;
                        r.ranges = Some(ProtoRanges {
                            range: set
                                .iter()
                                .map(|(begin, end)| Range { begin, end })
                                .collect(),
                        });
                    }
                    Amount::Set(items) => {
                        r.r#type = Type::Set as i32;
                        r.set = Some(Set {
                            item: items.iter().cloned().collect(),
                        });
                    }
                }
                r
            })
            .collect()
    }

    /// Adds a scalar quantity of `name` for `role` (`*` for unreserved).
    pub fn with_scalar(
        mut self,
        name: &str,
        role: &str,
        value: f64,
    ) -> Result<Self, ResourceError> {
        let amount = Amount::Scalar(to_fixed(name, value)?);
        self.add_amount(Label::new(name), Label::new(role), amount)?;
        Ok(self)
    }

    fn add_amount(
        &mut self,
        name: Label,
        role: Label,
        amount: Amount,
    ) -> Result<(), ResourceError> {
        if amount.is_empty() {
            return Ok(());
        }
        match self.entries.get_mut(&name, &role) {
            None => {
                self.entries.insert(name, role, amount);
            }
            Some(existing) => {
                if !existing.same_kind(&amount) {
                    return Err(ResourceError::TypeClash(name.to_string()));
                }
                match (existing, amount) {
                    (Amount::Scalar(a), Amount::Scalar(b)) => {
                        *a = a
                            .checked_add(b)
                            .ok_or_else(|| ResourceError::TooLarge(name.to_string()))?
                    }
                    (Amount::Ranges(a), Amount::Ranges(b)) => a.add(&b),
                    (Amount::Set(a), Amount::Set(b)) => a.extend(b),
                    _ => unreachable!("kinds checked above"),
                }
            }
        }
        Ok(())
    }

    /// Adds `other` to these resources; fails, changing nothing, if a (name, role) has
    /// another type there than here.
    pub fn add(&mut self, other: &Resources) -> Result<(), ResourceError> {
        if let Some(((name, _), _)) = other.entries.iter().find(|((name, role), amount)| {
            self.entries
                .get(name, role)
                .is_some_and(|mine| !mine.same_kind(amount))
        }) {
            return Err(ResourceError::TypeClash(name.to_string()));
        }
        for (key, amount) in other.entries.iter() {
            // In place when the entry exists (no key copied): running sums add often.
            match self.entries.get_mut(&key.0, &key.1) {
                Some(existing) => existing.add_same_kind(amount),
                None => self.add_amount(key.0.clone(), key.1.clone(), amount.clone())?,
            }
        }
        Ok(())
    }

    /// Adds only `other`'s scalar entries (what sums over agents may hold; see
    /// [`Resources::scalars`]), without building the scalar copy first.
    pub fn add_scalars(&mut self, other: &Resources) -> Result<(), ResourceError> {
        for ((name, role), amount) in other.entries.iter() {
            if let Amount::Scalar(_) = amount {
                if self
                    .entries
                    .get(name, role)
                    .is_some_and(|mine| !mine.same_kind(amount))
                {
                    return Err(ResourceError::TypeClash(name.to_string()));
                }
                self.add_amount(name.clone(), role.clone(), amount.clone())?;
            }
        }
        Ok(())
    }

    /// Whether every entry of `other` is covered by these resources.
    pub fn contains(&self, other: &Resources) -> bool {
        other.entries.iter().all(|((name, role), need)| {
            match (self.entries.get(name, role), need) {
                (Some(Amount::Scalar(have)), Amount::Scalar(need)) => have >= need,
                (Some(Amount::Ranges(have)), Amount::Ranges(need)) => have.contains(need),
                (Some(Amount::Set(have)), Amount::Set(need)) => need.is_subset(have),
                _ => false,
            }
        })
    }

    /// These resources minus `other`, or `None` if `other` is not contained in them.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        let mut out = self.clone();
        out.try_sub(other).then_some(out)
    }

    /// Takes `other` out of these resources in place if they contain it (and says whether
    /// they did); otherwise changes nothing. The cheap form of [`Resources::checked_sub`] for
    /// running sums.
    pub fn try_sub(&mut self, other: &Resources) -> bool {
        if !self.contains(other) {
            return false;
        }
        for ((name, role), take) in other.entries.iter() {
            let Some(have) = self.entries.get_mut(name, role) else {
                continue;
            };
            match (have, take) {
                (Amount::Scalar(a), Amount::Scalar(b)) => *a -= b,
                (Amount::Ranges(a), Amount::Ranges(b)) => a.remove(b),
                (Amount::Set(a), Amount::Set(b)) => a.retain(|item| !b.contains(item)),
                // `contains` checked that every entry has the same kind here.
                _ => continue,
            }
            if self.entries.get(name, role).is_some_and(Amount::is_empty) {
                self.entries.remove(name, role);
            }
        }
        true
    }

    /// Whether there is nothing here.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total scalar quantity of `name` over all roles (0 if absent or not a scalar).
    pub fn scalar(&self, name: &str) -> f64 {
        self.scalar_fixed(name) as f64 / SCALAR_SCALE as f64
    }

    fn scalar_fixed(&self, name: &str) -> i64 {
        self.entries
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, amount)| match amount {
                Amount::Scalar(v) => *v,
                _ => 0,
            })
            .sum()
    }

    /// Total scalar quantities by name (over all roles): what dominant shares are computed on.
    pub fn scalar_totals(&self) -> BTreeMap<String, f64> {
        self.scalar_sums()
            .map(|(name, total)| (name.to_owned(), total))
            .collect()
    }

    /// [`Resources::scalar_totals`] without allocating: each scalar name once, in name order,
    /// with its quantity summed over roles.
    pub fn scalar_sums(&self) -> impl Iterator<Item = (&str, f64)> {
        // Entries are sorted by (name, role), so one name's roles are adjacent.
        let mut scalars = self
            .entries
            .iter()
            .filter_map(|((name, _), amount)| match amount {
                Amount::Scalar(v) => Some((name.as_str(), *v)),
                _ => None,
            })
            .peekable();
        std::iter::from_fn(move || {
            let (name, mut sum) = scalars.next()?;
            while let Some((_, v)) = scalars.next_if(|(n, _)| *n == name) {
                sum += v;
            }
            Some((name, sum as f64 / SCALAR_SCALE as f64))
        })
    }

    /// The scalar entries only. Sums over agents must use these: ranges and sets are
    /// per-agent (port 31000 on two agents is two ports, but one in a set union).
    pub fn scalars(&self) -> Resources {
        Resources {
            entries: self
                .entries
                .iter()
                .filter(|(_, amount)| matches!(amount, Amount::Scalar(_)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// These resources with the total scalar quantity of each name in `caps` cut down to at
    /// most its cap (a cap at or below zero removes that resource); other resources are kept
    /// whole. What a role under a quota limit may still be offered.
    pub fn capped(&self, caps: &BTreeMap<String, f64>) -> Resources {
        let mut left: BTreeMap<&str, i64> = caps
            .iter()
            .map(|(name, cap)| {
                let fixed = (cap.max(0.0) * SCALAR_SCALE as f64).floor();
                (name.as_str(), fixed.min(i64::MAX as f64) as i64)
            })
            .collect();
        Resources {
            entries: self
                .entries
                .iter()
                .filter_map(|((name, role), amount)| {
                    let (Amount::Scalar(v), Some(room)) = (amount, left.get_mut(name.as_str()))
                    else {
                        return Some(((name.clone(), role.clone()), amount.clone()));
                    };
                    let take = (*v).min(*room);
                    *room -= take;
                    (take > 0).then(|| ((name.clone(), role.clone()), Amount::Scalar(take)))
                })
                .collect(),
        }
    }

    /// The entries for one role only.
    pub fn reserved_for(&self, role: &str) -> Resources {
        Resources {
            entries: self
                .entries
                .iter()
                .filter(|((_, r), _)| r == role)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Every entry as (name, role, amount).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Amount)> {
        self.entries
            .iter()
            .map(|((name, role), amount)| (name.as_str(), role.as_str(), amount))
    }
}

fn role_of(r: &Resource) -> Label {
    if r.role.is_empty() {
        Label::new(UNRESERVED_ROLE)
    } else {
        Label::new(&r.role)
    }
}

/// A plain decimal (`12`, `0.5`, `3.1415`) as thousandths, exactly (rounded to the nearest
/// thousandth): any amount [`Resources`] prints reads back the same however large, where an
/// `f64` holds whole numbers exactly only up to 2^53. `None` if `text` is another form (`1e3`,
/// read through `f64` as Mesos reads it) or too large.
fn decimal_to_fixed(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.ends_with('.')) {
        return None;
    }
    let mut fixed: i64 = whole.parse::<i64>().ok()?.checked_mul(SCALAR_SCALE)?;
    let mut scale = SCALAR_SCALE / 10;
    for (i, d) in fraction.bytes().enumerate() {
        let d = i64::from(d - b'0');
        if i == 3 {
            // The fourth decimal rounds the third, half up.
            fixed = fixed.checked_add(i64::from(d >= 5))?;
            break;
        }
        fixed = fixed.checked_add(d * scale)?;
        scale /= 10;
    }
    (fixed <= i64::MAX / SCALAR_SCALE * SCALAR_SCALE).then_some(fixed)
}

/// Thousandths as the shortest exact decimal (`2`, `0.1`, `1.25`).
fn fixed_to_text(fixed: i64) -> String {
    let sign = if fixed < 0 { "-" } else { "" };
    let magnitude = fixed.unsigned_abs();
    let (whole, fraction) = (magnitude / 1000, magnitude % 1000);
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let fraction = format!("{fraction:03}");
    format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
}

/// Converts a scalar to thousandths, rounding to the nearest as Mesos does.
fn to_fixed(name: &str, value: f64) -> Result<i64, ResourceError> {
    if !value.is_finite() || value < 0.0 || value > (i64::MAX / SCALAR_SCALE) as f64 {
        return Err(ResourceError::BadScalar {
            name: name.to_owned(),
            value,
        });
    }
    Ok((value * SCALAR_SCALE as f64).round() as i64)
}

impl fmt::Display for Resources {
    /// The `--resources` text form: `cpus:4;mem:8192;ports:[31000-32000]`, with `name(role)`
    /// for reserved resources.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for ((name, role), amount) in self.entries.iter() {
            if !first {
                f.write_str(";")?;
            }
            first = false;
            f.write_str(name)?;
            if role != UNRESERVED_ROLE {
                write!(f, "({role})")?;
            }
            f.write_str(":")?;
            match amount {
                Amount::Scalar(v) => f.write_str(&fixed_to_text(*v))?,
                Amount::Ranges(set) => write!(f, "{set}")?,
                Amount::Set(items) => {
                    let items: Vec<&str> = items.iter().map(String::as_str).collect();
                    write!(f, "{{{}}}", items.join(","))?
                }
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Resources {
    type Err = ResourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Resources {
        text.parse().unwrap()
    }

    #[test]
    fn capped_cuts_only_the_named_scalars() {
        let offer = r("cpus:4;mem:1024;cpus(ops):2;ports:[31000-31010]");
        let caps = BTreeMap::from([("cpus".to_owned(), 5.0), ("mem".to_owned(), 0.0)]);
        let cut = offer.capped(&caps);
        assert_eq!(cut.scalar("cpus"), 5.0, "{cut}");
        assert_eq!(cut.scalar("mem"), 0.0, "{cut}");
        assert!(cut.contains(&r("ports:[31000-31010]")));
        assert!(offer.contains(&cut));
        assert_eq!(offer.capped(&BTreeMap::new()), offer);
        let negative = BTreeMap::from([("cpus".to_owned(), -1.0)]);
        assert_eq!(offer.capped(&negative).scalar("cpus"), 0.0);
    }

    #[test]
    fn try_sub_takes_in_place_only_what_is_there() {
        let mut free = r("cpus:2;mem:512;ports:[31000-31010]");
        assert!(free.try_sub(&r("cpus:1;ports:[31000-31004]")));
        assert_eq!(free, r("cpus:1;mem:512;ports:[31005-31010]"));
        assert!(
            !free.try_sub(&r("cpus:1;ports:[31000-31000]")),
            "that port is gone"
        );
        assert_eq!(
            free,
            r("cpus:1;mem:512;ports:[31005-31010]"),
            "unchanged when refused"
        );
        assert!(free.try_sub(&r("cpus:1;mem:512;ports:[31005-31010]")));
        assert!(free.is_empty());
    }

    #[test]
    fn arithmetic_is_exact_in_thousandths() {
        let mut total = Resources::new();
        for _ in 0..10 {
            total.add(&r("cpus:0.1")).unwrap();
        }
        assert_eq!(total.scalar("cpus"), 1.0, "ten tenths make exactly one");
        let left = total.checked_sub(&r("cpus:0.3")).unwrap();
        assert_eq!(left.scalar("cpus"), 0.7);
        assert!(left.checked_sub(&r("cpus:0.701")).is_none());
        assert!(left.checked_sub(&r("cpus:0.7")).unwrap().is_empty());
    }

    #[test]
    fn roles_are_kept_apart() {
        let agent = r("cpus:4;cpus(analytics):2;mem:1024");
        assert_eq!(agent.scalar("cpus"), 6.0);
        assert!(!r("cpus:5").is_empty());
        assert!(
            !agent.contains(&r("cpus:5")),
            "reserved cpus do not count as unreserved"
        );
        assert!(agent.contains(&r("cpus(analytics):2")));
        assert_eq!(
            agent.reserved_for("analytics").to_string(),
            "cpus(analytics):2"
        );
    }

    #[test]
    fn proto_round_trip_and_validation() {
        let agent = r("cpus:4;mem:8192;ports:[31000-31002,32000-32000];zones:{a,b}");
        let back = Resources::from_proto(&agent.to_proto()).unwrap();
        assert_eq!(back, agent);
        let mut bad = agent.to_proto();
        bad[0].scalar = Some(Scalar { value: -1.0 });
        assert!(matches!(
            Resources::from_proto(&bad),
            Err(ResourceError::BadScalar { .. })
        ));
        let mut bad = agent.to_proto();
        bad[0].scalar = None;
        assert!(matches!(
            Resources::from_proto(&bad),
            Err(ResourceError::MissingValue { .. })
        ));
        let mut nan = agent.to_proto();
        nan[0].scalar = Some(Scalar { value: f64::NAN });
        assert!(Resources::from_proto(&nan).is_err());
    }

    #[test]
    fn adding_a_clashing_type_changes_nothing() {
        let mut a = r("cpus:1;zones:{a}");
        let before = a.clone();
        assert!(matches!(
            a.add(&r("mem:5;zones:[1-2]")),
            Err(ResourceError::TypeClash(_))
        ));
        assert_eq!(a, before);
    }

    #[test]
    fn sets_and_ranges_subtract() {
        let agent = r("ports:[31000-31010];zones:{a,b,c}");
        let used = r("ports:[31005-31006];zones:{b}");
        let left = agent.checked_sub(&used).unwrap();
        assert_eq!(
            left.to_string(),
            "ports:[31000-31004,31007-31010];zones:{a,c}"
        );
        assert!(
            left.checked_sub(&used).is_none(),
            "the same ports cannot be taken twice"
        );
    }
}
