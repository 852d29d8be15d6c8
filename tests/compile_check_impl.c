/* the implementation, in its own translation unit (see compile_check.c) */
#define DEEPSEEK_IMPLEMENTATION
#include "../deepseek.h"
