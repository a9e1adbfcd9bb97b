//! The static site of a generated trace: levels with a grid navigation graph, doors on graph
//! edges, lifts serving every level at the same grid position, dispensers, ingestors and one
//! charger per robot; and its `BuildingMap` message with a small PNG floor plan per level.

use std::collections::HashMap;

use compact_str::{CompactString, format_compact};
use rmf_dash_dataflows::model::ros::*;

use super::SiteConfig;
use super::rng::Rng;

/// Distance between neighbouring graph vertices, in metres.
pub const SPACING: f64 = 4.0;

/// A vertex: level index and grid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vertex {
    pub level: u16,
    pub row: u16,
    pub col: u16,
}

impl Vertex {
    pub fn xy(self) -> (f64, f64) {
        // `+ 0.0` turns -0.0 (row 0) into 0.0.
        (
            self.col as f64 * SPACING,
            -(self.row as f64) * SPACING + 0.0,
        )
    }
}

#[derive(Debug, Clone)]
pub struct DoorGeo {
    pub name: CompactString,
    pub level: u16,
    /// The graph edge the door sits on (a < b).
    pub edge: (Vertex, Vertex),
}

#[derive(Debug, Clone)]
pub struct LiftGeo {
    pub name: CompactString,
    pub row: u16,
    pub col: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkcellKind {
    Dispenser,
    Ingestor,
}

#[derive(Debug, Clone)]
pub struct Workcell {
    pub guid: CompactString,
    pub kind: WorkcellKind,
    pub at: Vertex,
}

#[derive(Debug, Clone)]
pub struct FleetGeo {
    pub name: CompactString,
    pub model: CompactString,
    /// Task categories this fleet takes.
    pub categories: &'static [&'static str],
    pub robots: Vec<RobotGeo>,
}

#[derive(Debug, Clone)]
pub struct RobotGeo {
    pub name: CompactString,
    pub charger: Vertex,
}

#[derive(Debug, Clone)]
pub struct World {
    pub name: CompactString,
    pub level_names: Vec<CompactString>,
    pub rows: u16,
    pub cols: u16,
    pub doors: Vec<DoorGeo>,
    /// Edge (a < b) -> door index.
    pub door_on_edge: HashMap<(Vertex, Vertex), usize>,
    pub lifts: Vec<LiftGeo>,
    pub workcells: Vec<Workcell>,
    pub fleets: Vec<FleetGeo>,
    /// Patrol waypoints per level.
    pub waypoints: Vec<Vec<Vertex>>,
}

/// Fleet kinds: (model, task categories).
const KINDS: &[(&str, &[&str])] = &[
    ("tinyRobot", &["delivery", "patrol"]),
    ("deliveryRobot", &["delivery"]),
    ("cleanerBot", &["clean", "patrol"]),
    ("caddy", &["patrol"]),
];

impl World {
    pub fn build(cfg: &SiteConfig, rng: &mut Rng) -> World {
        let levels = cfg.levels.max(1);
        let robots: usize = cfg.fleet_sizes.iter().sum();
        let per_level = robots.div_ceil(levels);
        let workcells_per_level = (per_level / 20).max(1);
        // Room for a charger per robot, workcells, lifts, waypoints and free corridors.
        let needed = 3 * per_level + 4 * workcells_per_level + cfg.lifts + 24;
        let side = (needed as f64).sqrt().ceil().max(5.0) as u16;
        let (rows, cols) = (side, side);
        let level_names: Vec<CompactString> =
            (0..levels).map(|i| format_compact!("L{}", i + 1)).collect();

        // Lifts occupy column 0, spread over the rows; the same position on every level.
        let lifts: Vec<LiftGeo> = (0..cfg.lifts)
            .map(|i| LiftGeo {
                name: format_compact!("lift_{}", i + 1),
                row: ((i * rows as usize) / cfg.lifts.max(1)) as u16,
                col: 0,
            })
            .collect();
        let mut taken: std::collections::HashSet<Vertex> = std::collections::HashSet::new();
        for l in 0..levels as u16 {
            for lift in &lifts {
                taken.insert(Vertex {
                    level: l,
                    row: lift.row,
                    col: lift.col,
                });
            }
        }
        // Free interior vertices of each level in a seeded order.
        let mut free: Vec<Vec<Vertex>> = (0..levels as u16)
            .map(|level| {
                let mut v: Vec<Vertex> = (0..rows)
                    .flat_map(|row| (1..cols).map(move |col| Vertex { level, row, col }))
                    .filter(|v| !taken.contains(v))
                    .collect();
                // Fisher-Yates with the site's generator: deterministic for a seed.
                for i in (1..v.len()).rev() {
                    v.swap(i, rng.below(i + 1));
                }
                v
            })
            .collect();

        let mut workcells = Vec::new();
        for (l, free) in free.iter_mut().enumerate() {
            for k in 0..workcells_per_level {
                for (kind, prefix) in [
                    (WorkcellKind::Dispenser, "dispenser"),
                    (WorkcellKind::Ingestor, "ingestor"),
                ] {
                    if let Some(at) = free.pop() {
                        let guid = match (&cfg.workcell_names, kind) {
                            (Some((d, _)), WorkcellKind::Dispenser) if l == 0 && k == 0 => {
                                d.clone()
                            }
                            (Some((_, i)), WorkcellKind::Ingestor) if l == 0 && k == 0 => i.clone(),
                            _ => format_compact!("{}_{prefix}_{}", level_names[l], k + 1),
                        };
                        workcells.push(Workcell { guid, kind, at });
                    }
                }
            }
        }
        let waypoints: Vec<Vec<Vertex>> = free
            .iter_mut()
            .map(|f| (0..6).filter_map(|_| f.pop()).collect())
            .collect();

        // Fleets are spread over levels: robot i of the site lives on level i % levels.
        let mut fleets = Vec::new();
        let mut robot_index = 0usize;
        for (f, &size) in cfg.fleet_sizes.iter().enumerate() {
            let (model, categories) = match &cfg.fleet_names {
                Some(names) => {
                    let name = &names[f % names.len()];
                    KINDS
                        .iter()
                        .find(|(m, _)| name.starts_with(m))
                        .copied()
                        .unwrap_or(KINDS[f % KINDS.len()])
                }
                None => KINDS[f % KINDS.len()],
            };
            let name = match &cfg.fleet_names {
                Some(names) => names[f % names.len()].clone(),
                None => format_compact!("{model}_{:03}", f + 1),
            };
            let robots = (0..size)
                .map(|j| {
                    let level = robot_index % levels;
                    robot_index += 1;
                    let charger = free[level].pop().unwrap_or(Vertex {
                        level: level as u16,
                        row: (j % rows as usize) as u16,
                        col: cols - 1,
                    });
                    RobotGeo {
                        name: if cfg.fleet_names.is_some() {
                            format_compact!("{name}{}", j + 1)
                        } else {
                            format_compact!("{name}_r{:02}", j + 1)
                        },
                        charger,
                    }
                })
                .collect();
            fleets.push(FleetGeo {
                name,
                model: CompactString::new(model),
                categories,
                robots,
            });
        }

        // Doors on horizontal edges of interior rows, spread over levels.
        let mut doors = Vec::new();
        let mut door_on_edge = HashMap::new();
        let mut attempts = 0;
        while doors.len() < cfg.doors && attempts < cfg.doors * 50 + 100 {
            attempts += 1;
            let level = (doors.len() % levels) as u16;
            let row = rng.below(rows as usize) as u16;
            let col = 1 + rng.below(cols as usize - 2) as u16;
            let a = Vertex { level, row, col };
            let b = Vertex {
                level,
                row,
                col: col + 1,
            };
            if door_on_edge.contains_key(&(a, b)) {
                continue;
            }
            let name = match &cfg.door_names {
                Some(names) if doors.len() < names.len() => names[doors.len()].clone(),
                _ => format_compact!(
                    "{}_door_{:02}",
                    level_names[level as usize],
                    doors.len() / levels + 1
                ),
            };
            door_on_edge.insert((a, b), doors.len());
            doors.push(DoorGeo {
                name,
                level,
                edge: (a, b),
            });
        }

        World {
            name: cfg.name.clone(),
            level_names,
            rows,
            cols,
            doors,
            door_on_edge,
            lifts,
            workcells,
            fleets,
            waypoints,
        }
    }

    pub fn lift_vertex(&self, lift: usize, level: u16) -> Vertex {
        let l = &self.lifts[lift];
        Vertex {
            level,
            row: l.row,
            col: l.col,
        }
    }

    /// The `BuildingMap` message of the site.
    pub fn building_map(&self) -> BuildingMap {
        let levels = self
            .level_names
            .iter()
            .enumerate()
            .map(|(l, name)| self.level_msg(l as u16, name))
            .collect();
        let lifts = self
            .lifts
            .iter()
            .map(|lift| {
                let (x, y) = Vertex {
                    level: 0,
                    row: lift.row,
                    col: lift.col,
                }
                .xy();
                Lift {
                    name: lift.name.clone(),
                    levels: self.level_names.clone(),
                    doors: vec![Door {
                        name: format_compact!("{}_door", lift.name),
                        v1_x: (x + 1.0) as f32,
                        v1_y: (y - 1.0) as f32,
                        v2_x: (x + 1.0) as f32,
                        v2_y: (y + 1.0) as f32,
                        door_type: 2,
                        motion_range: 0.75,
                        motion_direction: 1,
                    }],
                    wall_graph: Graph::default(),
                    ref_x: x as f32,
                    ref_y: y as f32,
                    ref_yaw: 0.0,
                    width: 2.0,
                    depth: 2.0,
                }
            })
            .collect();
        BuildingMap {
            name: self.name.clone(),
            levels,
            lifts,
        }
    }

    fn level_msg(&self, level: u16, name: &CompactString) -> Level {
        let index = |v: Vertex| (v.row as u32) * self.cols as u32 + v.col as u32;
        let mut names: HashMap<Vertex, CompactString> = HashMap::new();
        for w in self.workcells.iter().filter(|w| w.at.level == level) {
            names.insert(w.at, w.guid.clone());
        }
        for (i, wp) in self.waypoints[level as usize].iter().enumerate() {
            names.insert(*wp, format_compact!("{name}_wp_{}", i + 1));
        }
        for f in &self.fleets {
            for r in f.robots.iter().filter(|r| r.charger.level == level) {
                names.insert(r.charger, format_compact!("{}_charger", r.name));
            }
        }
        for lift in &self.lifts {
            names.insert(self.lift_vertex_of(lift, level), lift.name.clone());
        }
        let param = |name: &str, value: &str| Param {
            name: name.into(),
            type_: 1,
            value_string: value.to_string(),
            ..Default::default()
        };
        let vertices: Vec<GraphNode> = (0..self.rows)
            .flat_map(|row| (0..self.cols).map(move |col| Vertex { level, row, col }))
            .map(|v| {
                let (x, y) = v.xy();
                let name = names.get(&v).cloned().unwrap_or_default();
                let mut params = Vec::new();
                if name.ends_with("_charger") {
                    params.push(Param {
                        name: "is_charger".into(),
                        type_: 4,
                        value_bool: true,
                        ..Default::default()
                    });
                }
                if self.workcells.iter().any(|w| w.at == v) {
                    params.push(param("pickup_dispenser", &name));
                }
                GraphNode {
                    x: x as f32,
                    y: y as f32,
                    name,
                    params,
                }
            })
            .collect();
        let mut edges = Vec::new();
        for row in 0..self.rows {
            for col in 0..self.cols {
                let a = Vertex { level, row, col };
                let mut push = |b: Vertex| {
                    let mut params = Vec::new();
                    if let Some(&d) = self.door_on_edge.get(&(a, b)) {
                        params.push(param("door_name", &self.doors[d].name));
                    }
                    edges.push(GraphEdge {
                        v1_idx: index(a),
                        v2_idx: index(b),
                        params,
                        edge_type: 0,
                    });
                };
                if col + 1 < self.cols {
                    push(Vertex {
                        level,
                        row,
                        col: col + 1,
                    });
                }
                if row + 1 < self.rows {
                    push(Vertex {
                        level,
                        row: row + 1,
                        col,
                    });
                }
            }
        }
        let doors = self
            .doors
            .iter()
            .filter(|d| d.level == level)
            .map(|d| {
                let (ax, ay) = d.edge.0.xy();
                let (bx, by) = d.edge.1.xy();
                let (mx, my) = ((ax + bx) / 2.0, (ay + by) / 2.0);
                Door {
                    name: d.name.clone(),
                    v1_x: mx as f32,
                    v1_y: (my - 1.0) as f32,
                    v2_x: mx as f32,
                    v2_y: (my + 1.0) as f32,
                    door_type: 2,
                    motion_range: 0.75,
                    motion_direction: 1,
                }
            })
            .collect();
        // Sorted by vertex: the HashMap's order is not deterministic.
        let mut named: Vec<(&Vertex, &CompactString)> = names.iter().collect();
        named.sort();
        let places = named
            .into_iter()
            .map(|(v, n)| {
                let (x, y) = v.xy();
                Place {
                    name: n.clone(),
                    x: x as f32,
                    y: y as f32,
                    yaw: 0.0,
                    position_tolerance: 0.1,
                    yaw_tolerance: 0.1,
                }
            })
            .collect();
        let width_m = (self.cols as f64 - 1.0) * SPACING + 2.0 * SPACING;
        let png = self.floor_png(level);
        Level {
            name: name.clone(),
            elevation: level as f32 * 4.0,
            images: vec![AffineImage {
                name: name.clone(),
                x_offset: -SPACING as f32,
                y_offset: SPACING as f32,
                yaw: 0.0,
                scale: (width_m / FLOOR_PX as f64) as f32,
                encoding: "png".into(),
                data: png,
            }],
            places,
            doors,
            nav_graphs: vec![Graph {
                name: "0".into(),
                vertices,
                edges,
                params: vec![],
            }],
            wall_graph: Graph::default(),
        }
    }

    fn lift_vertex_of(&self, lift: &LiftGeo, level: u16) -> Vertex {
        Vertex {
            level,
            row: lift.row,
            col: lift.col,
        }
    }

    /// A small greyscale PNG of a level: corridors of the graph, doors, lifts and workcells.
    fn floor_png(&self, level: u16) -> Vec<u8> {
        let n = FLOOR_PX as usize;
        let mut px = vec![235u8; n * n];
        let span = (self.cols.max(self.rows) as f64 + 1.0) * SPACING;
        let to_px = |v: Vertex| {
            let (x, y) = v.xy();
            let fx = ((x + SPACING) / span * n as f64) as isize;
            let fy = ((-y + SPACING) / span * n as f64) as isize;
            (fx, fy)
        };
        let mut put = |x: isize, y: isize, c: u8| {
            if (0..n as isize).contains(&x) && (0..n as isize).contains(&y) {
                px[y as usize * n + x as usize] = c;
            }
        };
        for row in 0..self.rows {
            for col in 0..self.cols {
                let v = Vertex { level, row, col };
                let (x, y) = to_px(v);
                if col + 1 < self.cols {
                    let (x2, _) = to_px(Vertex { col: col + 1, ..v });
                    for xi in x..=x2 {
                        put(xi, y, 200);
                    }
                }
                if row + 1 < self.rows {
                    let (_, y2) = to_px(Vertex { row: row + 1, ..v });
                    for yi in y..=y2 {
                        put(x, yi, 200);
                    }
                }
            }
        }
        let mut mark = |v: Vertex, c: u8| {
            let (x, y) = to_px(v);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    put(x + dx, y + dy, c);
                }
            }
        };
        for d in self.doors.iter().filter(|d| d.level == level) {
            mark(d.edge.0, 90);
        }
        for lift in &self.lifts {
            mark(self.lift_vertex_of(lift, level), 40);
        }
        for w in self.workcells.iter().filter(|w| w.at.level == level) {
            mark(w.at, 140);
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, FLOOR_PX, FLOOR_PX);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            // An in-memory encoder of a valid size cannot fail.
            if let Ok(mut w) = enc.write_header() {
                let _ = w.write_image_data(&px);
            }
        }
        out
    }
}

/// Side of the floor-plan images in pixels.
pub const FLOOR_PX: u32 = 256;
