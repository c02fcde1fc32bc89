/* What the compiled library was built for. */
#include "common.h"

const char *cs_isa(void) { return CS_ISA; }

int cs_vector_floats(void) { return VL; }

#ifdef __VERSION__
const char *cs_compiler(void) { return __VERSION__; }
#else
const char *cs_compiler(void) { return "unknown"; }
#endif
