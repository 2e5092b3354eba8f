/* py_train.c — training from Python: the C trainer and GRPO run behind m.train / m.grpo
 * (python/py_train.h).
 */
#include "python/py_train.h"

#include "model/train/grpo.h"
#include "model/train/trainer.h"

void dsv3_py_train_free(dsv3_py_model *self) {
    dsv3_grpo_free(self->grpo);
    self->grpo = NULL;
    dsv3_trainer_free(self->trainer);
    self->trainer = NULL;
}
