package kerasfile

import "fmt"

// OptimizerSpec is what decides which variables a Keras optimizer saves
// under optimizer/vars.
type OptimizerSpec struct {
	// Class is the Keras optimizer class: "RMSprop", "Adam" or "SGD".
	Class string
	// Momentum is RMSprop's and SGD's momentum (slots only when non-zero).
	Momentum float64
	// Centered is RMSprop's centered flag.
	Centered bool
	// AMSGrad is Adam's amsgrad flag.
	AMSGrad bool
	// UseEMA is the base optimizer's use_ema: a moving average ("average"
	// slot) per variable.
	UseEMA bool
	// LRSchedule is true when the learning rate is a LearningRateSchedule,
	// which is not a variable.
	LRSchedule bool
}

// OptimizerVar names one entry of optimizer.variables.
type OptimizerVar struct {
	// Slot is "iteration" (int64 scalar), "learning_rate" (float32 scalar)
	// or the slot kind: "velocity", "momentum", "average_gradient",
	// "velocity_hat", "average" (use_ema).
	Slot string
	// Var indexes the model's trainable_variables the slot belongs to
	// (same shape); -1 for iteration and learning_rate.
	Var int
}

// OptimizerVars lists optimizer.variables in Keras 3.15's order for spec over
// a model with nTrainable trainable variables: BaseOptimizer.__init__ makes
// iteration and learning_rate; build then adds each slot kind through
// add_optimizer_variables, which loops over the model's variables per kind,
// or, given several kinds at once (Adam's momentum and velocity), interleaves
// them per variable (keras/src/optimizers/{base_optimizer,rmsprop,adam,sgd}.py);
// with use_ema, BaseOptimizer.build first adds an "average" per variable.
func OptimizerVars(spec OptimizerSpec, nTrainable int) ([]OptimizerVar, error) {
	vars := []OptimizerVar{{"iteration", -1}}
	if !spec.LRSchedule {
		vars = append(vars, OptimizerVar{"learning_rate", -1})
	}
	// each adds one variable per model variable for every slot in kinds,
	// the kinds interleaved per model variable.
	each := func(kinds ...string) {
		for i := 0; i < nTrainable; i++ {
			for _, k := range kinds {
				vars = append(vars, OptimizerVar{k, i})
			}
		}
	}
	// BaseOptimizer.build adds the averages before the subclass's slots.
	if spec.UseEMA {
		each("average")
	}
	switch spec.Class {
	case "RMSprop":
		each("velocity")
		if spec.Momentum > 0 {
			each("momentum")
		}
		if spec.Centered {
			each("average_gradient")
		}
	case "Adam", "AdamW": // AdamW is Adam's build
		each("momentum", "velocity")
		if spec.AMSGrad {
			each("velocity_hat")
		}
	case "SGD":
		if spec.Momentum != 0 {
			each("momentum")
		}
	default:
		return nil, fmt.Errorf("optimizer %q: kerasfile knows the saved variables of RMSprop, Adam and SGD", spec.Class)
	}
	return vars, nil
}
