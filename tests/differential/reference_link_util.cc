// reference_link_util.cc -- compiles the reference evaluator and the random generators (owned
// by tests/reference/) into writ_differential_tests: the test glob only picks up files of this
// folder, so the two sources are included here rather than duplicated.
#include "tests/reference/random_gen_util.cc"
#include "tests/reference/reference_util.cc"
