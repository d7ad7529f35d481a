/* hvg_version — the gateway's version string. */
#ifndef HVG_VERSION_H
#define HVG_VERSION_H

#define HVG_VERSION_STRING "0.1.0"

/* Static string, never NULL. */
const char *hvg_version(void);

#endif
