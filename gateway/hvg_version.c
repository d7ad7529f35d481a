#include "hvg_version.h"

const char *hvg_version(void) { return HVG_VERSION_STRING; }
