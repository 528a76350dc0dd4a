// Each kernel file puts its kernels for table->level into the table; av_kernels_fill calls them all.
#ifndef AV_FILL_H
#define AV_FILL_H

#include "ckernels.h"

void av_fill_matmul(av_kernels *table);
void av_fill_activations(av_kernels *table);
void av_fill_merge(av_kernels *table);
void av_fill_panels(av_kernels *table);
void av_fill_attention(av_kernels *table);

#endif
