package graph

// AdamW is keras.optimizers.AdamW (keras/src/optimizers/adamw.py): Adam
// with decoupled weight decay, default 0.004, applied as every Keras 3
// optimizer applies weight_decay (Base).
type AdamW struct {
	Adam `mapstructure:",squash"`
}

func init() {
	RegisterOptimizer(OptimizerKind{Name: "adamw", Class: "AdamW", New: func() Optimizer {
		o := &AdamW{Adam: Adam{LR: 0.001, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7, Base: DefaultBase()}}
		o.WeightDecay = 0.004
		return o
	}})
}
