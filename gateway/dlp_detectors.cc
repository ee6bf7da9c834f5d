// dlp_detectors.cc -- the built-in DLP detectors: the table (Builtins) that says what each
// class matches -- a cheap trigger for the RE2::Set pass, the precise RE2, and a validator
// (Luhn, mod 97, SSN area rules, JWT header, boundaries, ...). Entry points: Builtins
// (dlp_internal.h), BuiltinDlpClasses and IsReservedDlpName (dlp.h).
#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "gateway/dlp_internal.h"

namespace writ::gateway {
namespace dlp_internal {
namespace {

using json = nlohmann::json;

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

}  // namespace

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

}  // namespace dlp_internal

using dlp_internal::Builtins;

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

}  // namespace writ::gateway
