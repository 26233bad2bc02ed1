//! The `condition` of a Sigma rule: `and`, `or`, `not`, parentheses, `1 of x*`,
//! `all of x*`, `1 of them`, `all of them`, over the names of the detection's searches.
//! Precedence, loosest first: `or`, `and`, `not`.

/// A compiled condition; search references are indexes into the rule's searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Search(usize),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    OneOf,
    AllOf,
    Word(String),
}

fn tokens(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut cur = String::new();
    for c in src.chars() {
        match c {
            '(' | ')' => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                words.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            '|' => return Err("aggregations (`| count() ...`) are not supported".into()),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next_is_of = words.get(i + 1).is_some_and(|n| n == "of");
        out.push(match w {
            "(" => Tok::Open,
            ")" => Tok::Close,
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            "1" | "any" if next_is_of => {
                i += 1;
                Tok::OneOf
            }
            "all" if next_is_of => {
                i += 1;
                Tok::AllOf
            }
            w if w.chars().all(|c| c.is_ascii_digit()) && next_is_of => {
                return Err(format!("`{w} of` is not supported; use `1 of` or `all of`"))
            }
            w => Tok::Word(w.to_string()),
        });
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    at: usize,
    names: &'a [String],
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut parts = vec![self.not()?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            parts.push(self.not()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek() == Some(&Tok::Not) {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn matching(&self, pattern: &str) -> Result<Vec<Expr>, String> {
        let found: Vec<Expr> = self
            .names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                if pattern == "them" {
                    // `them` leaves out searches whose name starts with `_`.
                    !n.starts_with('_')
                } else if let Some(prefix) = pattern.strip_suffix('*') {
                    n.starts_with(prefix)
                } else {
                    n.as_str() == pattern
                }
            })
            .map(|(i, _)| Expr::Search(i))
            .collect();
        if found.is_empty() {
            return Err(format!("`{pattern}` names no search of the detection"));
        }
        Ok(found)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let tok = self.peek().cloned();
        self.at += 1;
        match tok {
            Some(Tok::Open) => {
                let e = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("a `(` is not closed".into());
                }
                self.at += 1;
                Ok(e)
            }
            Some(Tok::OneOf | Tok::AllOf) => {
                let all = tok == Some(Tok::AllOf);
                let Some(Tok::Word(p)) = self.peek().cloned() else {
                    return Err("`of` needs a search name, a pattern like `sel*`, or `them`".into());
                };
                self.at += 1;
                let found = self.matching(&p)?;
                Ok(if all {
                    Expr::And(found)
                } else {
                    Expr::Or(found)
                })
            }
            Some(Tok::Word(w)) => {
                let i = self
                    .names
                    .iter()
                    .position(|n| *n == w)
                    .ok_or_else(|| format!("`{w}` names no search of the detection"))?;
                Ok(Expr::Search(i))
            }
            Some(t) => Err(format!("unexpected `{}`", show(&t))),
            None => Err("ends too early".into()),
        }
    }
}

fn show(t: &Tok) -> &str {
    match t {
        Tok::Open => "(",
        Tok::Close => ")",
        Tok::And => "and",
        Tok::Or => "or",
        Tok::Not => "not",
        Tok::OneOf => "1 of",
        Tok::AllOf => "all of",
        Tok::Word(w) => w,
    }
}

/// Parses a condition over the searches `names`.
pub fn parse(src: &str, names: &[String]) -> Result<Expr, String> {
    let mut p = Parser {
        toks: tokens(src)?,
        at: 0,
        names,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return Err(format!("unexpected `{}` in `{src}`", show(t)));
    }
    Ok(e)
}

/// Evaluates a condition given each search's result (computed on demand).
pub fn eval(e: &Expr, search: &mut dyn FnMut(usize) -> bool) -> bool {
    match e {
        Expr::Search(i) => search(*i),
        Expr::Not(x) => !eval(x, search),
        Expr::And(xs) => xs.iter().all(|x| eval(x, search)),
        Expr::Or(xs) => xs.iter().any(|x| eval(x, search)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["sel_a", "sel_b", "filter", "_helper"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn truth(src: &str, on: &[usize]) -> bool {
        let e = parse(src, &names()).unwrap();
        eval(&e, &mut |i| on.contains(&i))
    }

    #[test]
    fn precedence_and_parentheses() {
        assert!(truth("sel_a or sel_b and filter", &[0]));
        assert!(!truth("(sel_a or sel_b) and filter", &[0]));
        assert!(truth("sel_a and not filter", &[0]));
        assert!(!truth("sel_a and not filter", &[0, 2]));
        assert!(truth("not (sel_a and sel_b)", &[0]));
    }

    #[test]
    fn of_patterns_and_them() {
        assert!(truth("1 of sel_*", &[1]));
        assert!(!truth("all of sel_*", &[1]));
        assert!(truth("all of sel_* and not filter", &[0, 1]));
        assert!(truth("all of them", &[0, 1, 2]), "them leaves out _helper");
        assert!(truth("1 of them", &[2]));
        assert!(!truth("1 of them", &[3]));
    }

    #[test]
    fn mistakes_are_named() {
        let n = names();
        assert!(parse("sel_c", &n)
            .unwrap_err()
            .contains("`sel_c` names no search"));
        assert!(parse("(sel_a", &n).unwrap_err().contains("not closed"));
        assert!(parse("sel_a and", &n)
            .unwrap_err()
            .contains("ends too early"));
        assert!(parse("sel_a | count() > 5", &n)
            .unwrap_err()
            .contains("aggregations"));
        assert!(parse("1 of nope*", &n)
            .unwrap_err()
            .contains("names no search"));
    }
}
