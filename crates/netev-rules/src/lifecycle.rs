//! How long rules live, and where answers rank: the one place netevd's rules
//! owner and `netev run`'s supervisor take these decisions from, so that an
//! answer or a timed rule behaves the same in both.

use chrono::{DateTime, Utc};

use crate::{Duration, Rule};

/// Rules dropped when a rule set is loaded again at start: those that were
/// to live until a restart, and those whose time is up.
pub fn gone_at_start(rules: &[Rule], now: DateTime<Utc>) -> Vec<u32> {
    rules
        .iter()
        .filter(|r| r.duration == Duration::UntilRestart || r.duration.expired(now))
        .map(|r| r.id)
        .collect()
}

/// Rules whose time is up at `now`.
pub fn expired(rules: &[Rule], now: DateTime<Utc>) -> Vec<u32> {
    rules
        .iter()
        .filter(|r| r.duration.expired(now))
        .map(|r| r.id)
        .collect()
}

/// Of the rules in `used` (ids that decided something), those that were
/// `once` rules: used up, to be removed. Ids of other rules are ignored.
pub fn used_up(rules: &[Rule], used: &[u32]) -> Vec<u32> {
    used.iter()
        .copied()
        .filter(|id| {
            rules
                .iter()
                .any(|r| r.id == *id && r.duration == Duration::Once)
        })
        .collect()
}

/// Whether a rule's duration must be looked at when it matches: `once`
/// rules are used up by their first decision, timed ones expire.
pub fn is_transient(d: &Duration) -> bool {
    matches!(d, Duration::Once | Duration::Until(_))
}

/// Ranks the rule an answer made just ahead of the rule that asked (the
/// default policy is below every rule anyway, so an answer to a default
/// keeps its own priority).
pub fn rank_answer(rule: &mut Rule, asking: Option<&Rule>) {
    if let Some(asking) = asking {
        rule.priority = asking.priority.saturating_add(1);
    }
}

/// A rule aimed at one user that an answer for every user (scope
/// `…+any-user`, no `user`) would outrank, once ranked by [`rank_answer`]:
/// such an answer is refused, since answering one user's prompt must never
/// decide for another user against a rule written for them. `None` for an
/// answer that names its user (it cannot match anyone else's process).
pub fn outranked_user_rule<'a>(
    answer: &Rule,
    rules: &'a [Rule],
    asking: Option<u32>,
) -> Option<&'a Rule> {
    if answer.cond.uid.is_some() {
        return None;
    }
    rules.iter().find(|r| {
        r.enabled
            && r.cond.uid.is_some()
            && Some(r.id) != asking
            && r.action != answer.action
            // ties go to the older rule, so only a lower priority is outranked
            && r.priority < answer.priority
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::rule_from_fields;

    fn rule(id: u32, duration: &str, priority: i32, now: DateTime<Utc>) -> Rule {
        let mut r = rule_from_fields(
            [
                ("action", "deny"),
                ("duration", duration),
                ("priority", &priority.to_string()),
            ],
            now,
            &|_| None,
        )
        .unwrap();
        r.id = id;
        r
    }

    #[test]
    fn an_answer_for_every_user_may_not_outrank_a_rule_for_one() {
        let now = Utc::now();
        let mut mallory = rule(1, "always", 0, now);
        mallory.cond.uid = Some(1001);
        let asking = rule(2, "always", 0, now);
        let mut wide = rule(3, "always", 0, now);
        wide.action = crate::Action::Allow;
        rank_answer(&mut wide, Some(&asking));
        let rules = [mallory.clone(), asking.clone()];
        assert_eq!(
            outranked_user_rule(&wide, &rules, Some(2)).map(|r| r.id),
            Some(1)
        );
        let mut narrow = wide.clone();
        narrow.cond.uid = Some(1000);
        assert!(outranked_user_rule(&narrow, &rules, Some(2)).is_none());
        let mut disabled = mallory;
        disabled.enabled = false;
        assert!(outranked_user_rule(&wide, &[disabled, asking], Some(2)).is_none());
    }

    #[test]
    fn durations_decide_what_goes_and_when() {
        let t0 = Utc::now();
        let rules = vec![
            rule(1, "once", 0, t0),
            rule(2, "5m", 0, t0),
            rule(3, "until-restart", 0, t0),
            rule(4, "always", 0, t0),
        ];
        assert_eq!(gone_at_start(&rules, t0), [3]);
        let later = t0 + chrono::Duration::minutes(6);
        assert_eq!(gone_at_start(&rules, later), [2, 3]);
        assert_eq!(expired(&rules, t0), Vec::<u32>::new());
        assert_eq!(expired(&rules, later), [2]);
        assert_eq!(used_up(&rules, &[1, 2, 4, 9]), [1]);
        let transient: Vec<u32> = rules
            .iter()
            .filter(|r| is_transient(&r.duration))
            .map(|r| r.id)
            .collect();
        assert_eq!(transient, [1, 2]);
    }

    #[test]
    fn an_answer_ranks_just_ahead_of_the_rule_that_asked() {
        let now = Utc::now();
        let asking = rule(1, "always", 7, now);
        let mut answer = rule(2, "always", 0, now);
        rank_answer(&mut answer, Some(&asking));
        assert_eq!(answer.priority, 8);
        let mut top = rule(3, "always", 0, now);
        rank_answer(&mut top, Some(&rule(4, "always", i32::MAX, now)));
        assert_eq!(top.priority, i32::MAX, "saturates, never wraps below");
        let mut by_default = rule(5, "always", 3, now);
        rank_answer(&mut by_default, None);
        assert_eq!(by_default.priority, 3);
    }
}
