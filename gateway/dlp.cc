// dlp.cc -- see dlp.h. The detector table (kBuiltins) is the one place that says what each
// class matches: a cheap trigger for the RE2::Set pass, the precise RE2, and a validator.
#include "gateway/dlp.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <utility>

namespace writ::gateway {
namespace {

using json = nlohmann::json;

// A validator sees the whole scan buffer and the candidate span [*b, *e); it may narrow the
// span (e.g. to the card number inside a longer run of digit groups). False: not a finding.
using Validator = std::function<bool(std::string_view buf, size_t* b, size_t* e)>;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }
char At(std::string_view s, size_t i) { return i < s.size() ? s[i] : '\0'; }
char Before(std::string_view s, size_t i) { return i > 0 && i <= s.size() ? s[i - 1] : '\0'; }

// Nothing glued after a number ending at e: no letter, digit, '_' or '/', and no "-digit", ".digit",
// ":digit" (dates, versions, times).
bool NumberEnds(std::string_view buf, size_t e) {
  char post = At(buf, e);
  if (IsAlnum(post) || post == '_' || post == '/') return false;
  if ((post == '-' || post == '.' || post == ':') && IsDigit(At(buf, e + 1))) return false;
  return true;
}

// The number must not continue a longer token: no letter/digit/_ before or after, no
// [-./:+] glue before (versions, paths, ids, times), no "-digit" or ".digit" after.
bool NumberBoundaries(std::string_view buf, size_t b, size_t e) {
  char pre = Before(buf, b);
  if (IsAlnum(pre) || pre == '_' || pre == '-' || pre == '.' || pre == '/' || pre == ':' ||
      pre == '+')
    return false;
  return NumberEnds(buf, e);
}

std::string Digits(std::string_view s) {
  std::string d;
  for (char c : s)
    if (IsDigit(c)) d.push_back(c);
  return d;
}

bool Luhn(const std::string& digits) {
  int sum = 0;
  bool dbl = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

// Issuer prefix (IIN) and length of the major card networks.
bool CardIssuer(const std::string& d) {
  size_t n = d.size();
  auto pre = [&](size_t k) { return std::stoi(d.substr(0, k)); };
  if (d[0] == '4') return n == 13 || n == 16 || n == 19;                      // Visa
  int p2 = pre(2), p3 = pre(3), p4 = pre(4), p6 = pre(6);
  if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720)) return n == 16;  // Mastercard
  if (p2 == 34 || p2 == 37) return n == 15;                                    // Amex
  if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
      (p6 >= 622126 && p6 <= 622925))
    return n >= 16 && n <= 19;                                                 // Discover
  if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19;                     // JCB
  if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
    return n >= 14 && n <= 19;                                                 // Diners
  if (p2 == 62) return n >= 16 && n <= 19;                                     // UnionPay
  if (p4 >= 2200 && p4 <= 2204) return n >= 16 && n <= 19;                    // Mir
  if (p2 == 50 || (p2 >= 56 && p2 <= 58) || p2 == 63 || p2 == 67)
    return n >= 13 && n <= 19;                                                 // Maestro
  return false;
}

bool ValidCardDigits(const std::string& d) {
  if (d.size() < 13 || d.size() > 19) return false;
  if (std::all_of(d.begin(), d.end(), [&](char c) { return c == d[0]; })) return false;
  return CardIssuer(d) && Luhn(d);
}

// Digit groups of a card candidate: the whole run, or groups split by one consistent
// separator (' ' or '-'). Tries the longest contiguous run of groups that is a valid card
// (so "4111 1111 1111 1111 12/25" still finds the card).
bool ValidateCard(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  std::vector<std::pair<size_t, size_t>> groups;  // [begin, end) relative to *b
  std::vector<char> seps;                          // seps[i] separates groups i and i+1
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && IsDigit(s[j])) ++j;
    groups.emplace_back(i, j);
    if (j < s.size()) seps.push_back(s[j++]);
    i = j;
  }
  auto shape_ok = [&](size_t from, size_t to) {  // groups [from, to)
    if (to - from == 1) return true;  // an unseparated run next to other groups
    for (size_t g = from; g + 1 < to; ++g)
      if (seps[g] != seps[from]) return false;  // one separator style
    std::vector<size_t> len;
    for (size_t g = from; g < to; ++g) len.push_back(groups[g].second - groups[g].first);
    if (len.size() == 3 && len[0] == 4 && len[1] == 6 && (len[2] == 5 || len[2] == 4))
      return true;  // Amex 4-6-5, Diners 4-6-4
    for (size_t g = 0; g + 1 < len.size(); ++g)
      if (len[g] != 4) return false;
    return len.back() >= 1 && len.back() <= 4;
  };
  for (size_t width = groups.size(); width >= 1; --width) {
    for (size_t from = 0; from + width <= groups.size(); ++from) {
      size_t to = from + width;
      size_t gb = *b + groups[from].first, ge = *b + groups[to - 1].second;
      std::string d = Digits(buf.substr(gb, ge - gb));
      if (d.size() < 13 || d.size() > 19 || !shape_ok(from, to)) continue;
      if (!NumberBoundaries(buf, gb, ge) || !ValidCardDigits(d)) continue;
      *b = gb;
      *e = ge;
      return true;
    }
  }
  return false;
}

bool ValidateSsn(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  if (!NumberBoundaries(buf, *b, *e)) return false;
  std::string d = Digits(s);
  if (d.size() != 9) return false;
  if (s.size() == 11 && s[3] != s[6]) return false;  // one separator style
  int area = std::stoi(d.substr(0, 3)), group = std::stoi(d.substr(3, 2)),
      serial = std::stoi(d.substr(5, 4));
  if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0) return false;
  // Published in advertising, never valid.
  if (d == "078051120" || d == "219099999") return false;
  return true;
}

// Phone numbers: international (+CC ...), NANP ((212) 555-0134, 212-555-0134, 212.555.0134)
// and national numbers with a trunk 0 (020 7946 0958, 01632 960123, 01 23 45 67 89).
bool ValidatePhone(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  char pre = Before(buf, *b);
  if (IsAlnum(pre) || pre == '_' || pre == '.' || pre == '/' || pre == ':' || pre == '-' ||
      pre == '+')
    return false;
  if (s[0] == '+') {
    // Cut at the first doubled separator ("+44 20 7946 0958 - 10:30").
    size_t end = 1;
    while (end < s.size()) {
      char c = s[end];
      if (!IsDigit(c)) {
        char n = At(s, end + 1);
        bool pair_ok = (c == ')' && n == ' ') || (c == ' ' && n == '(') ||
                       (c == ')' && IsDigit(n)) || (c == '(' && IsDigit(n)) || IsDigit(n);
        if (!pair_ok) break;
      }
      ++end;
    }
    // The greedy match may have taken a trailing group that belongs to what follows
    // ("+44 20 7946 0958 3/4"): drop trailing groups until the rest is a number.
    while (true) {
      while (end > 1 && !IsDigit(s[end - 1])) --end;
      std::string_view t = s.substr(0, end);
      size_t nd = Digits(t).size();
      if (nd < 8) return false;
      if (nd <= 15 && std::count(t.begin(), t.end(), '(') == std::count(t.begin(), t.end(), ')') &&
          NumberEnds(buf, *b + end)) {
        *e = *b + end;
        return true;
      }
      while (end > 1 && IsDigit(s[end - 1])) --end;  // drop the last group
    }
  }
  if (!NumberBoundaries(buf, *b, *e)) return false;
  std::string d = Digits(s);
  if (s[0] == '(' || (s.size() == 12 && (s[3] == '-' || s[3] == '.'))) {
    // NANP: area and exchange codes start with 2-9; one separator style.
    if (d.size() != 10 || d[0] < '2' || d[3] < '2') return false;
    if (s[0] != '(' && s[3] != s[7]) return false;
    return true;
  }
  // National with trunk prefix 0.
  std::vector<size_t> len;
  size_t run = 0;
  for (char c : s) {
    if (IsDigit(c)) {
      ++run;
    } else {
      len.push_back(run);
      run = 0;
    }
  }
  len.push_back(run);
  if (d[0] != '0' || d[1] == '0') return false;
  if (len.size() == 5 && std::all_of(len.begin(), len.end(), [](size_t l) { return l == 2; }))
    return true;  // 01 23 45 67 89
  if (d.size() < 10 || d.size() > 11 || len[0] < 3 || len[0] > 5) return false;
  for (size_t k = 1; k < len.size(); ++k)
    if (len[k] < 3 || (len.size() > 2 && len[k] > 4)) return false;
  return true;
}

bool ValidateEmail(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  size_t at = s.find('@');
  std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
  if (local.find("..") != std::string_view::npos || local.back() == '.') return false;
  std::string tld(domain.substr(domain.rfind('.') + 1));
  for (auto& c : tld) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // icon@2x.png and friends: file names, not addresses.
  static const std::set<std::string> kFileExt = {"png", "jpg", "jpeg", "gif", "svg", "webp",
                                                 "ico", "bmp", "tiff", "avif"};
  return kFileExt.count(tld) == 0;
}

// ISO 13616 lengths by country.
int IbanLength(std::string_view cc) {
  static const std::map<std::string, int, std::less<>> kLen = {
      {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
      {"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28},
      {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24},
      {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18},
      {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23},
      {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
      {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22},
      {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
      {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
      {"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28},
      {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}};
  auto it = kLen.find(cc);
  return it == kLen.end() ? 0 : it->second;
}

bool ValidateIban(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  int want = IbanLength(s.substr(0, 2));
  if (want == 0) return false;
  // Take exactly `want` alphanumerics; the greedy match may have run into following words.
  std::string compact;
  size_t end = 0;
  while (end < s.size() && static_cast<int>(compact.size()) < want) {
    if (s[end] != ' ') compact.push_back(s[end]);
    ++end;
  }
  if (static_cast<int>(compact.size()) != want) return false;
  if (end < s.size() && s[end] != ' ') return false;  // ends inside a group
  char post = At(buf, *b + end);
  if (IsAlnum(post) || post == '_') return false;
  char pre = Before(buf, *b);
  if (pre == '_' || pre == '-' || pre == '/' || pre == '.') return false;
  std::string r = compact.substr(4) + compact.substr(0, 4);
  int mod = 0;
  for (char c : r) {
    if (IsDigit(c)) {
      mod = (mod * 10 + (c - '0')) % 97;
    } else {
      int v = c - 'A' + 10;
      mod = (mod * 100 + v) % 97;
    }
  }
  if (mod != 1) return false;
  *e = *b + end;
  return true;
}

// base64url -> bytes; false on a bad character.
bool Base64UrlDecode(std::string_view in, std::string* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-' || c == '+') v = 62;
    else if (c == '_' || c == '/') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

bool ValidateJwt(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  std::string header;
  if (!Base64UrlDecode(s.substr(0, s.find('.')), &header)) return false;
  json h = json::parse(header, nullptr, /*allow_exceptions=*/false);
  return h.is_object() && h.contains("alg") && h["alg"].is_string();
}

bool MixedToken(std::string_view s) {
  bool digit = false, alpha = false;
  for (char c : s) {
    digit |= IsDigit(c);
    alpha |= std::isalpha(static_cast<unsigned char>(c)) != 0;
  }
  return digit && alpha;
}

bool ValidateBearer(std::string_view buf, size_t* b, size_t* e) {
  return MixedToken(buf.substr(*b, *e - *b));
}

bool ValidateAwsSecret(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  char post = At(buf, *e);
  if (IsAlnum(post) || post == '/' || post == '+' || post == '=') return false;  // longer
  bool upper = false, lower = false, other = false;
  for (char c : s) {
    upper |= std::isupper(static_cast<unsigned char>(c)) != 0;
    lower |= std::islower(static_cast<unsigned char>(c)) != 0;
    other |= IsDigit(c) || c == '/' || c == '+';
  }
  return upper && lower && other;
}

bool ValidateSlack(std::string_view buf, size_t* b, size_t* e) {
  std::string_view s = buf.substr(*b, *e - *b);
  return s.size() >= 20 && MixedToken(s.substr(5));
}

bool ValidateGoogle(std::string_view buf, size_t* b, size_t* e) {
  auto tok = [](char c) { return IsAlnum(c) || c == '_' || c == '-'; };
  return !tok(Before(buf, *b)) && !tok(At(buf, *e));
}

struct Builtin {
  const char* name;
  std::vector<const char*> triggers;  // each a superset of what `pattern` can match
  const char* pattern;
  Validator validate;  // may be empty
  // After a rejected candidate, search again from its second byte rather than its end: for
  // short numeric detectors whose greedy match can swallow a neighbour ("8 234-56-7890 1
  // 378282246310005"). Only for detectors whose matches are short (the cost is per byte).
  bool retry_inside = false;
};

// No pattern here can match a NUL byte (the segment separator).
const std::vector<Builtin>& Builtins() {
  static const std::vector<Builtin> kBuiltins = {
      {"email",
       {R"([A-Za-z0-9._%+\-]@[A-Za-z0-9][A-Za-z0-9.\-]*\.[A-Za-z][A-Za-z])"},
       R"([A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b)",
       ValidateEmail},
      {"phone",
       {R"(\+[1-9][0-9 ().\-]{6})", R"(\d{3}[.\-]\d{3}[.\-]\d{4})", R"(\(\d{3}\) ?\d{3})",
        R"(\b0[1-9]\d{0,3} \d{2})"},
       R"(\+[1-9][0-9 ().\-]{6,22}[0-9]|\(\d{3}\) ?\d{3}[.\-]\d{4}\b|\b\d{3}[.\-]\d{3}[.\-]\d{4}\b|\b0[1-9]\d{0,3}(?: \d{2,4}){1,4}\b)",
       ValidatePhone, /*retry_inside=*/true},
      {"ssn",
       {R"(\d{3}-\d{2}-\d{4})",
        R"((?i:\bssn|social security)[^0-9\x00\n]{0,30}\d{3} ?\d{2} ?\d{4})"},
       R"(\b(\d{3}-\d{2}-\d{4})\b|(?i:\bssn|social security(?: number)?)\b[^0-9\x00\n]{0,20}?\b(\d{3} ?\d{2} ?\d{4})\b)",
       ValidateSsn, /*retry_inside=*/true},
      {"credit_card",
       // Every issuer prefix starts with 2-6 (so epoch milliseconds, 17..., do not trigger);
       // the valid card inside a longer run starts a group, so this still fires within it.
       {R"(\b[2-6]\d(?:[ \-]?\d){11})"},
       R"(\b(?:\d[ \-]?){12,22}\d\b)",
       ValidateCard, /*retry_inside=*/true},
      {"iban",
       {R"(\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11}| [A-Z0-9]{4} [A-Z0-9]{4}))"},
       R"(\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,8}(?: [A-Z0-9]{1,4})?)\b)",
       ValidateIban, /*retry_inside=*/true},
      {"aws_access_key",
       {R"(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"},
       R"(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)",
       nullptr},
      {"aws_secret_key",
       {R"((?i)secret_?access_?key|aws.{0,20}secret)"},
       R"((?i:secret_?access_?key|aws[^\x00\n]{0,20}?secret[_ ]?(?:access[_ ]?)?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40}))",
       ValidateAwsSecret},
      {"github_token",
       {R"(\bgh[pousr]_[A-Za-z0-9]{30})", R"(\bgithub_pat_[A-Za-z0-9_]{20})"},
       R"(\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})\b)",
       nullptr},
      {"slack_token",
       {R"(\bxox[abeprs]-[0-9A-Za-z])"},
       R"(\bxox[abeprs]-[0-9A-Za-z]+(?:-[0-9A-Za-z]+){1,5})",
       ValidateSlack},
      {"google_api_key", {R"(AIza[0-9A-Za-z_\-]{35})"}, R"(AIza[0-9A-Za-z_\-]{35})",
       ValidateGoogle},
      {"private_key",
       {R"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY)"},
       // The body: base64, header lines (Proc-Type: 4,ENCRYPTED), escaped newlines; a '-' only
       // before a letter or digit, so the END line is not swallowed. Linear, no backtracking.
       R"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s:,\\]|-[A-Za-z0-9])*(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?)",
       nullptr},
      {"jwt",
       {R"(eyJ[A-Za-z0-9_\-]{8,}\.eyJ)"},
       R"(\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]*)?)",
       ValidateJwt},
      {"bearer_token",
       {R"((?i)bearer[ \t]+[A-Za-z0-9\-._~+/]{16})"},
       R"((?i:\bbearer)[ \t]+([A-Za-z0-9\-._~+/]{16,}=*))",
       ValidateBearer},
  };
  return kBuiltins;
}

RE2::Options DetectorOptions() {
  RE2::Options o;
  o.set_log_errors(false);
  o.set_max_mem(64 << 20);
  return o;
}

// Tokens of a path target: .key, ["key"], [n], [*], .*
struct PathStep {
  enum Kind { kKey, kIndex, kAnyKey, kAnyIndex } kind;
  std::string key;
  size_t index = 0;
};

bool ParsePathTarget(std::string_view t, std::string* root, std::vector<PathStep>* steps,
                     std::string* error) {
  auto ident = [](char c) { return IsAlnum(c) || c == '_' || c == '-' || c == '$'; };
  size_t i = 0;
  while (i < t.size() && ident(t[i])) ++i;
  *root = std::string(t.substr(0, i));
  if (*root != "args" && *root != "result") {
    *error = "redact target `" + std::string(t) + "`: a path must start with `args` or `result`";
    return false;
  }
  auto bad = [&](const std::string& what) {
    *error = "redact target `" + std::string(t) + "`: " + what + " at offset " +
             std::to_string(i);
    return false;
  };
  while (i < t.size()) {
    if (t[i] == '.') {
      ++i;
      if (i < t.size() && t[i] == '*') {
        steps->push_back({PathStep::kAnyKey, "", 0});
        ++i;
        continue;
      }
      size_t j = i;
      while (j < t.size() && ident(t[j])) ++j;
      if (j == i) return bad("expected a key after `.`");
      steps->push_back({PathStep::kKey, std::string(t.substr(i, j - i)), 0});
      i = j;
    } else if (t[i] == '[') {
      ++i;
      if (i < t.size() && t[i] == '*') {
        if (At(t, i + 1) != ']') return bad("expected `]`");
        steps->push_back({PathStep::kAnyIndex, "", 0});
        i += 2;
      } else if (i < t.size() && t[i] == '"') {
        std::string key;
        ++i;
        while (i < t.size() && t[i] != '"') {
          if (t[i] == '\\' && i + 1 < t.size()) ++i;
          key.push_back(t[i++]);
        }
        if (At(t, i) != '"' || At(t, i + 1) != ']') return bad("unterminated `[\"...\"]`");
        steps->push_back({PathStep::kKey, key, 0});
        i += 2;
      } else {
        size_t j = i, v = 0;
        while (j < t.size() && IsDigit(t[j]) && j - i < 9) v = v * 10 + (t[j++] - '0');
        if (j == i || At(t, j) != ']') return bad("expected an index, `*` or a quoted key");
        steps->push_back({PathStep::kIndex, "", v});
        i = j + 1;
      }
    } else {
      return bad("unexpected `" + std::string(1, t[i]) + "`");
    }
  }
  return true;
}

std::string EscapePointerToken(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out.push_back(c);
  }
  return out;
}

constexpr char kRedactedValue[] = "[REDACTED]";

}  // namespace

const std::vector<std::string>& BuiltinDlpClasses() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> v;
    for (const auto& b : Builtins()) v.push_back(b.name);
    std::sort(v.begin(), v.end());
    return v;
  }();
  return kNames;
}

bool IsReservedDlpName(const std::string& name) {
  const auto& b = BuiltinDlpClasses();
  return std::find(b.begin(), b.end(), name) != b.end() || name == "all" || name == "*" ||
         name == "args" || name == "result" || name == "truncated";
}

struct DlpScanner::Detector {
  std::string name;
  std::unique_ptr<RE2> re;
  Validator validate;
  bool retry_inside = false;
};

DlpScanner::DlpScanner() = default;
DlpScanner::~DlpScanner() = default;

std::unique_ptr<const DlpScanner> DlpScanner::Create(const DlpConfig& config,
                                                     std::string* error) {
  std::unique_ptr<DlpScanner> s(new DlpScanner());
  s->config_ = config;
  // Built-in patterns are ASCII: matching bytes (Latin-1) is the same and keeps the DFA small.
  RE2::Options latin1 = DetectorOptions();
  latin1.set_encoding(RE2::Options::EncodingLatin1);
  RE2::Options utf8 = DetectorOptions();
  std::set<std::string> seen;
  for (const auto& name : config.detectors) {
    auto it = std::find_if(Builtins().begin(), Builtins().end(),
                           [&](const Builtin& b) { return name == b.name; });
    if (it == Builtins().end()) {
      *error = "unknown dlp detector `" + name + "`";
      return nullptr;
    }
    if (!seen.insert(name).second) continue;
    auto d = std::make_unique<Detector>();
    d->name = name;
    d->re = std::make_unique<RE2>(it->pattern, latin1);
    if (!d->re->ok()) {  // a bug in the table; tests compile every built-in
      *error = "dlp detector `" + name + "`: " + d->re->error();
      return nullptr;
    }
    d->validate = it->validate;
    d->retry_inside = it->retry_inside;
    s->detectors_.push_back(std::move(d));
    if (s->set_ == nullptr) s->set_ = std::make_unique<RE2::Set>(latin1, RE2::UNANCHORED);
    for (const char* t : it->triggers) {
      std::string err;
      if (s->set_->Add(t, &err) < 0) {
        *error = "dlp detector `" + name + "`: invalid trigger: " + err;
        return nullptr;
      }
      s->set_owner_.push_back(s->detectors_.size() - 1);
    }
  }
  s->num_builtin_ = s->detectors_.size();
  for (const auto& c : config.custom) {
    if (IsReservedDlpName(c.name) || !seen.insert(c.name).second) {
      *error = "dlp custom pattern `" + c.name + "`: the name is taken";
      return nullptr;
    }
    auto d = std::make_unique<Detector>();
    d->name = c.name;
    d->re = std::make_unique<RE2>(c.pattern, utf8);
    if (!d->re->ok()) {
      *error = "dlp custom pattern `" + c.name + "`: invalid regex: " + d->re->error();
      return nullptr;
    }
    if (RE2::FullMatch("", *d->re)) {
      *error = "dlp custom pattern `" + c.name + "` matches the empty string";
      return nullptr;
    }
    s->detectors_.push_back(std::move(d));
    if (s->custom_set_ == nullptr)
      s->custom_set_ = std::make_unique<RE2::Set>(utf8, RE2::UNANCHORED);
    std::string err;
    if (s->custom_set_->Add(c.pattern, &err) < 0) {
      *error = "dlp custom pattern `" + c.name + "`: invalid regex: " + err;
      return nullptr;
    }
  }
  if ((s->set_ != nullptr && !s->set_->Compile()) ||
      (s->custom_set_ != nullptr && !s->custom_set_->Compile())) {
    *error = "dlp: the detector set is too large to compile";
    return nullptr;
  }
  return s;
}

bool DlpScanner::AcceptMatch(size_t di, std::string_view buf, size_t ss, size_t se, size_t at,
                             std::vector<Hit>* hits, bool* truncated, size_t* next) const {
  const Detector& d = *detectors_[di];
  const int ngroups = d.re->NumberOfCapturingGroups();
  std::vector<re2::StringPiece> sub(static_cast<size_t>(ngroups) + 1);
  // The string alone is the context: \b, ^ and $ see its ends, and no match leaves it.
  re2::StringPiece text(buf.data() + ss, se - ss);
  if (!d.re->Match(text, at - ss, se - ss, RE2::ANCHOR_START, sub.data(), ngroups + 1))
    return false;
  size_t me = at + sub[0].size();
  size_t b = at, e = me;
  for (int g = 1; g <= ngroups; ++g) {
    const re2::StringPiece& sp = sub[static_cast<size_t>(g)];
    if (sp.data() != nullptr) {
      b = static_cast<size_t>(sp.data() - buf.data());
      e = b + sp.size();
      break;
    }
  }
  *next = d.retry_inside ? at + 1 : std::max(me, at + 1);
  // Validators see the whole buffer: a neighbour outside the string is a NUL separator.
  if (e <= b || (d.validate && !d.validate(buf, &b, &e))) return false;
  if (hits->size() >= kMaxFindings) {
    *truncated = true;
    return false;
  }
  hits->push_back({di, b, e});
  *next = e;  // a narrowed span (e.g. one card of several) leaves the rest to rescan
  return true;
}

void DlpScanner::ScanBuffer(std::string_view buf, const std::vector<size_t>& seg_starts,
                            std::vector<Hit>* hits, bool* truncated) const {
  if (detectors_.empty() || buf.empty()) return;
  const size_t n = buf.size();
  re2::StringPiece text(buf.data(), n);
  auto seg_of = [&](size_t p) {  // [start, end) of the string holding offset p
    auto it = std::upper_bound(seg_starts.begin(), seg_starts.end(), p);
    size_t start = *(it - 1);
    size_t end = it == seg_starts.end() ? n : *it - 1;
    return std::pair(start, end);
  };
  // 1. Built-in triggers, chunk by chunk: which detectors to run where. A window overlaps
  //    the next chunk by kTriggerSpan, the longest a trigger can be.
  std::vector<std::vector<std::pair<size_t, size_t>>> ranges(detectors_.size());
  auto add_range = [&](size_t di, size_t cs, size_t ce) {
    auto& r = ranges[di];
    if (!r.empty() && r.back().second == cs) {
      r.back().second = ce;
    } else {
      r.emplace_back(cs, ce);
    }
  };
  std::vector<int> matched;
  if (set_ != nullptr) {
    for (size_t cs = 0; cs < n; cs += kChunk) {
      size_t ce = std::min(n, cs + kChunk), we = std::min(n, ce + kTriggerSpan);
      matched.clear();
      RE2::Set::ErrorInfo info{};
      if (set_->Match(re2::StringPiece(buf.data() + cs, we - cs), &matched, &info)) {
        for (int m : matched) {
          size_t di = set_owner_[static_cast<size_t>(m)];
          if (ranges[di].empty() || ranges[di].back().second != ce) add_range(di, cs, ce);
        }
      } else if (info.kind != RE2::Set::kNoError) {
        // The DFA ran out of memory: fail closed by running every built-in detector here.
        for (size_t di = 0; di < num_builtin_; ++di) add_range(di, cs, ce);
      }
    }
  }
  // 2. Precise matches near each triggered range. A match may start up to kLookBehind before
  //    the range (the trigger can sit inside it, as for email). The search window ends
  //    kLookAhead past the range: enough for every detector to match *some* prefix of a
  //    match that starts in the range (bounded detectors fit whole; JWT, PEM, bearer and
  //    Slack patterns match on a prefix). The full match is then taken anchored at its start
  //    within its string, so a long JWT or key block is found whole, in linear time.
  for (size_t di = 0; di < num_builtin_; ++di) {
    const Detector& d = *detectors_[di];
    size_t pos = 0;
    for (const auto& [rs, re] : ranges[di]) {
      pos = std::max(pos, rs > kLookBehind ? rs - kLookBehind : 0);
      while (pos < re) {
        re2::StringPiece m0;
        if (!d.re->Match(text, pos, std::min(n, re + kLookAhead), RE2::UNANCHORED, &m0, 1))
          break;
        size_t at = static_cast<size_t>(m0.data() - buf.data());
        auto [ss, se] = seg_of(at);
        size_t next = at + 1;
        AcceptMatch(di, buf, ss, se, at, hits, truncated, &next);
        if (*truncated) return;
        pos = std::max(next, at + 1);
      }
    }
  }
  // 3. Custom patterns: one set over the whole buffer, then string by string (their own
  //    regexes, UTF-8, with each string as the context).
  if (custom_set_ == nullptr) return;
  matched.clear();
  RE2::Set::ErrorInfo info{};
  std::vector<bool> run(detectors_.size(), false);
  if (custom_set_->Match(text, &matched, &info)) {
    for (int m : matched) run[num_builtin_ + static_cast<size_t>(m)] = true;
  } else if (info.kind != RE2::Set::kNoError) {
    std::fill(run.begin(), run.end(), true);
  }
  for (size_t di = num_builtin_; di < detectors_.size(); ++di) {
    if (!run[di]) continue;
    const Detector& d = *detectors_[di];
    for (size_t si = 0; si < seg_starts.size(); ++si) {
      size_t ss = seg_starts[si];
      size_t se = si + 1 < seg_starts.size() ? seg_starts[si + 1] - 1 : n;
      std::string_view seg = buf.substr(ss, se - ss);
      re2::StringPiece st(seg.data(), seg.size()), m0;
      size_t pos = 0;
      while (pos < seg.size() &&
             d.re->Match(st, pos, seg.size(), RE2::UNANCHORED, &m0, 1)) {
        size_t at = static_cast<size_t>(m0.data() - seg.data());
        size_t next = ss + at + 1;
        AcceptMatch(di, buf, ss, se, ss + at, hits, truncated, &next);
        if (*truncated) return;
        pos = std::max(next - ss, at + 1);
      }
    }
  }
}

DlpReport DlpScanner::Scan(std::string_view text) const {
  DlpReport r;
  if (text.size() > config_.max_scan_bytes) {
    text = text.substr(0, config_.max_scan_bytes);
    r.truncated = true;
  }
  r.scanned_bytes = text.size();
  std::vector<Hit> hits;
  ScanBuffer(text, {0}, &hits, &r.truncated);
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.begin, a.detector) < std::tie(b.begin, b.detector);
  });
  for (const Hit& h : hits)
    r.findings.push_back({detectors_[h.detector]->name, "", h.begin, h.end - h.begin});
  return r;
}

DlpReport DlpScanner::ScanJson(const json& doc) const { return ScanJsonImpl(doc, false); }
DlpReport DlpScanner::ScanToolResult(const json& result) const {
  return ScanJsonImpl(result, true);
}

DlpReport DlpScanner::ScanJsonImpl(const json& doc, bool tool_result) const {
  DlpReport r;
  // Where each string came from: a node per visited value, its parent and its token.
  struct Node {
    int parent;
    const std::string* key;  // object member name, or null for an array element / the root
    size_t index;
  };
  struct Seg {
    int node;
    bool in_key, in_number;
  };
  std::vector<Node> nodes{{-1, nullptr, 0}};
  nodes.reserve(1024);
  std::vector<Seg> segs;
  std::vector<size_t> starts;
  std::string buf;
  std::vector<const json*> skip;  // base64 payloads of tool results
  if (tool_result && doc.is_object() && doc.contains("content") && doc["content"].is_array()) {
    for (const auto& item : doc["content"]) {
      if (!item.is_object()) continue;
      if (item.contains("data")) skip.push_back(&item["data"]);
      if (item.contains("resource") && item["resource"].is_object() &&
          item["resource"].contains("blob"))
        skip.push_back(&item["resource"]["blob"]);
    }
  }
  bool full = false;
  // No built-in finding is shorter than 6 bytes (a@b.co); custom patterns may be.
  const size_t min_len = detectors_.size() > num_builtin_ ? 1 : 6;
  auto add = [&](std::string_view s, int node, bool in_key, bool in_number) {
    if (full || s.size() < min_len) return;
    size_t room = config_.max_scan_bytes > buf.size() ? config_.max_scan_bytes - buf.size() : 0;
    if (s.size() > room) {
      s = s.substr(0, room);
      full = true;
      r.truncated = true;
    }
    starts.push_back(buf.size());
    segs.push_back({node, in_key, in_number});
    buf.append(s);
    buf.push_back('\0');
  };
  std::vector<std::pair<const json*, int>> stack{{&doc, 0}};
  while (!stack.empty() && !full) {
    auto [v, id] = stack.back();
    stack.pop_back();
    if (nodes[static_cast<size_t>(id)].key != nullptr)
      add(*nodes[static_cast<size_t>(id)].key, id, true, false);
    if (!skip.empty() && std::find(skip.begin(), skip.end(), v) != skip.end()) continue;
    if (v->is_string()) {
      add(v->get_ref<const std::string&>(), id, false, false);
    } else if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      if (u >= 1000000000ULL) add(std::to_string(u), id, false, true);
    } else if (v->is_number_integer()) {
      int64_t i = v->get<int64_t>();
      if (i >= 1000000000LL || i <= -1000000000LL) add(std::to_string(i), id, false, true);
    } else if (v->is_object()) {
      size_t first = stack.size();
      for (auto it = v->begin(); it != v->end(); ++it) {
        nodes.push_back({id, &it.key(), 0});
        stack.emplace_back(&it.value(), static_cast<int>(nodes.size() - 1));
      }
      std::reverse(stack.begin() + static_cast<long>(first), stack.end());
    } else if (v->is_array()) {
      size_t first = stack.size();
      for (size_t i = 0; i < v->size(); ++i) {
        nodes.push_back({id, nullptr, i});
        stack.emplace_back(&(*v)[i], static_cast<int>(nodes.size() - 1));
      }
      std::reverse(stack.begin() + static_cast<long>(first), stack.end());
    }
  }
  if (!buf.empty()) buf.pop_back();  // no trailing separator
  r.scanned_bytes = buf.size();
  std::vector<Hit> hits;
  ScanBuffer(buf, starts, &hits, &r.truncated);
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return std::tie(a.begin, a.detector) < std::tie(b.begin, b.detector);
  });
  auto path_of = [&](int id) {
    std::vector<std::string> tokens;
    for (int n = id; n > 0; n = nodes[static_cast<size_t>(n)].parent) {
      const Node& node = nodes[static_cast<size_t>(n)];
      tokens.push_back(node.key ? EscapePointerToken(*node.key) : std::to_string(node.index));
    }
    std::string p;
    for (auto it = tokens.rbegin(); it != tokens.rend(); ++it) p += "/" + *it;
    return p;
  };
  for (const Hit& h : hits) {
    size_t si = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), h.begin) -
                                    starts.begin()) - 1;
    const Seg& seg = segs[si];
    r.findings.push_back({detectors_[h.detector]->name, path_of(seg.node), h.begin - starts[si],
                          h.end - h.begin, seg.in_key, seg.in_number});
  }
  return r;
}

std::vector<std::string> DlpScanner::Classes(const DlpReport& report) {
  std::set<std::string> s;
  for (const auto& f : report.findings) s.insert(f.cls);
  if (report.truncated) s.insert("truncated");
  return {s.begin(), s.end()};
}

json DlpScanner::FindingsJson(const DlpReport& report, size_t max_items) {
  json out = {{"classes", Classes(report)}, {"truncated", report.truncated}};
  json items = json::array();
  for (size_t i = 0; i < report.findings.size() && i < max_items; ++i) {
    const DlpFinding& f = report.findings[i];
    json item = {{"class", f.cls}, {"path", f.path}, {"offset", f.offset}, {"length", f.length}};
    if (f.in_key) item["in_key"] = true;
    items.push_back(std::move(item));
  }
  out["findings"] = std::move(items);
  if (report.findings.size() > max_items)
    out["findings_omitted"] = report.findings.size() - max_items;
  return out;
}

bool DlpScanner::ValidTarget(std::string_view target, std::string* error) const {
  if (target == "*" || target == "all") return true;
  if (target.find_first_of(".[") != std::string_view::npos || target == "args" ||
      target == "result") {
    std::string root;
    std::vector<PathStep> steps;
    return ParsePathTarget(target, &root, &steps, error);
  }
  for (const auto& d : detectors_)
    if (d->name == target) return true;
  std::string list;
  for (const auto& d : detectors_) list += (list.empty() ? "" : ", ") + d->name;
  *error = "redact target `" + std::string(target) +
           "` is not a dlp class of this gateway (" + list + "), `*`, or a path such as "
           "args.card.number";
  return false;
}

bool DlpScanner::RedactJson(json* doc, std::string_view root,
                            const std::vector<std::string>& targets, const DlpReport* report,
                            DlpRedaction* out, std::string* error) const {
  // Classify every target first: nothing is changed unless all are valid.
  bool all = false;
  std::set<std::string> classes;
  std::vector<std::pair<std::string, std::vector<PathStep>>> paths;
  for (const auto& t : targets) {
    if (!ValidTarget(t, error)) return false;
    if (t == "*" || t == "all") {
      all = true;
    } else if (t.find_first_of(".[") != std::string::npos || t == "args" || t == "result") {
      std::string r;
      std::vector<PathStep> steps;
      ParsePathTarget(t, &r, &steps, error);
      if (r == root) paths.emplace_back(t, std::move(steps));
    } else {
      classes.insert(t);
    }
  }
  try {
    if (all || !classes.empty()) {
      DlpReport local;
      if (report == nullptr) {
        local = ScanJson(*doc);
        report = &local;
      }
      // Group spans by (path, in_key).
      std::map<std::pair<std::string, bool>, std::vector<const DlpFinding*>> by_path;
      for (const auto& f : report->findings)
        if (all || classes.count(f.cls)) by_path[{f.path, f.in_key}].push_back(&f);
      std::vector<std::pair<std::string, std::string>> renames;  // path, new key
      for (auto& [where, fs] : by_path) {
        json::json_pointer ptr(where.first);
        if (!doc->contains(ptr)) continue;
        std::string text;
        json& v = (*doc)[ptr];
        if (where.second) {
          if (ptr.empty()) continue;
          text = ptr.back();
        } else if (v.is_string()) {
          text = v.get<std::string>();
        } else if (v.is_number_integer()) {
          v = "[REDACTED:" + fs.front()->cls + "]";
          out->items.push_back({where.first, fs.front()->cls});
          continue;
        } else {
          continue;
        }
        // Merge overlapping spans (ordered by offset, longest first); label with the first.
        std::sort(fs.begin(), fs.end(), [](const DlpFinding* a, const DlpFinding* b) {
          if (a->offset != b->offset) return a->offset < b->offset;
          return a->length != b->length ? a->length > b->length : a->cls < b->cls;
        });
        std::vector<std::tuple<size_t, size_t, std::string>> spans;
        for (const DlpFinding* f : fs) {
          size_t b = f->offset, e = std::min(text.size(), f->offset + f->length);
          if (b >= e) continue;
          if (!spans.empty() && b < std::get<1>(spans.back())) {
            std::get<1>(spans.back()) = std::max(std::get<1>(spans.back()), e);
          } else {
            spans.emplace_back(b, e, f->cls);
          }
        }
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
          auto& [b, e, cls] = *it;
          text.replace(b, e - b, "[REDACTED:" + cls + "]");
          out->items.push_back({where.first, cls});
        }
        if (where.second) {
          renames.emplace_back(where.first, text);
        } else {
          v = text;
        }
      }
      // Keys last, deepest first, so no rename moves a path still to be renamed.
      std::sort(renames.begin(), renames.end(), [](const auto& a, const auto& b) {
        return std::count(a.first.begin(), a.first.end(), '/') >
               std::count(b.first.begin(), b.first.end(), '/');
      });
      for (auto& [p, key] : renames) {
        json::json_pointer ptr(p);
        json& parent = (*doc)[ptr.parent_pointer()];
        std::string old = ptr.back(), fresh = key;
        for (int n = 2; parent.contains(fresh); ++n) fresh = key + "#" + std::to_string(n);
        json moved = std::move(parent[old]);
        parent.erase(old);
        parent[fresh] = std::move(moved);
      }
    }
    for (const auto& [target, steps] : paths) {
      std::vector<std::pair<json*, std::string>> frontier{{doc, ""}};
      for (const PathStep& st : steps) {
        std::vector<std::pair<json*, std::string>> next;
        for (auto& [v, p] : frontier) {
          if (st.kind == PathStep::kKey && v->is_object() && v->contains(st.key)) {
            next.emplace_back(&(*v)[st.key], p + "/" + EscapePointerToken(st.key));
          } else if (st.kind == PathStep::kIndex && v->is_array() && st.index < v->size()) {
            next.emplace_back(&(*v)[st.index], p + "/" + std::to_string(st.index));
          } else if (st.kind == PathStep::kAnyKey && v->is_object()) {
            for (auto it = v->begin(); it != v->end(); ++it)
              next.emplace_back(&it.value(), p + "/" + EscapePointerToken(it.key()));
          } else if (st.kind == PathStep::kAnyIndex && v->is_array()) {
            for (size_t i = 0; i < v->size(); ++i)
              next.emplace_back(&(*v)[i], p + "/" + std::to_string(i));
          }
        }
        frontier = std::move(next);
      }
      for (auto& [v, p] : frontier) {
        *v = kRedactedValue;
        out->items.push_back({p, target});
      }
    }
  } catch (const std::exception& e) {
    // Only reachable if `report` does not describe `doc` (a REQUIRES violation).
    *error = std::string("redaction failed: ") + e.what();
    return false;
  }
  return true;
}

}  // namespace writ::gateway
